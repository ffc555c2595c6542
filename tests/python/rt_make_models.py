"""Writes the small ONNX models and .npy inputs the runtime tests use into OUTDIR.

Usage: python3 rt_make_models.py OUTDIR

Models are built with onnx.helper (not exported by cnnc), so the tests check the runtime
against ONNX files made independently of the compiler.
"""

import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = [helper.make_opsetid("", 17)]


def save(model, path, check=True):
    model.ir_version = 8
    if check:
        onnx.checker.check_model(model)
    onnx.save(model, path)


def conv_model(path):
    # y = x ⋆ w (cross-correlation), x: [N, 1, 3, 3], w: [[0, 1], [2, 3]], no bias, no padding.
    w = helper.make_tensor("w", TensorProto.FLOAT, [1, 1, 2, 2], [0.0, 1.0, 2.0, 3.0])
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv", kernel_shape=[2, 2])
    graph = helper.make_graph(
        [node],
        "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 3, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1, 2, 2])],
        [w],
    )
    save(helper.make_model(graph, opset_imports=OPSET), path)


def classifier_model(path):
    # logits = x @ w, x: [N, 4], w: [4, 6]; class 5 wins for the all-ones input.
    w = np.zeros((4, 6), dtype=np.float32)
    for k in range(6):
        w[:, k] = k * 0.5
    wt = helper.make_tensor("w", TensorProto.FLOAT, [4, 6], w.flatten().tolist())
    node = helper.make_node("MatMul", ["x", "w"], ["logits"], name="fc")
    graph = helper.make_graph(
        [node],
        "classifier",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 6])],
        [wt],
    )
    save(helper.make_model(graph, opset_imports=OPSET), path)


def step_model(path):
    # The shape of a training step: f32 `input`, i64 `labels`, f32 parameter `p`;
    # outputs `scaled` = input * p and `labels_f` = float(labels).
    nodes = [
        helper.make_node("Mul", ["input", "p"], ["scaled"], name="mul"),
        helper.make_node("Cast", ["labels"], ["labels_f"], name="cast", to=TensorProto.FLOAT),
    ]
    graph = helper.make_graph(
        nodes,
        "step",
        [
            helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 2]),
            helper.make_tensor_value_info("labels", TensorProto.INT64, ["N"]),
            helper.make_tensor_value_info("p", TensorProto.FLOAT, [2]),
        ],
        [
            helper.make_tensor_value_info("scaled", TensorProto.FLOAT, ["N", 2]),
            helper.make_tensor_value_info("labels_f", TensorProto.FLOAT, ["N"]),
        ],
    )
    save(helper.make_model(graph, opset_imports=OPSET), path)


def reshape_model(path):
    # Valid, but fails when run on anything but 3 values: Reshape of [N, 4] to [3].
    shape = helper.make_tensor("shape", TensorProto.INT64, [1], [3])
    node = helper.make_node("Reshape", ["x", "shape"], ["y"], name="reshape")
    graph = helper.make_graph(
        [node],
        "reshape",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])],
        [shape],
    )
    save(helper.make_model(graph, opset_imports=OPSET), path)


def big_model(path):
    # Over 64 KiB, written by onnx.helper (not cnnc), its initializer first as torch.onnx
    # writes them: a model `export -o` may replace, judged by its first bytes.
    w = helper.make_tensor("w", TensorProto.FLOAT, [40000], np.ones(40000, dtype=np.float32))
    node = helper.make_node("Mul", ["x", "w"], ["y"], name="mul")
    graph = helper.make_graph(
        [node],
        "big",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 40000])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 40000])],
        [w],
    )
    save(helper.make_model(graph, opset_imports=OPSET, producer_name="pytorch"), path)


def cyclic_model(path):
    # Not a valid model: two nodes feed each other. Saved without the checker.
    nodes = [
        helper.make_node("Add", ["x", "b"], ["a"], name="first"),
        helper.make_node("Relu", ["a"], ["b"], name="second"),
    ]
    graph = helper.make_graph(
        nodes,
        "cycle",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("b", TensorProto.FLOAT, ["N", 4])],
    )
    model = helper.make_model(graph, opset_imports=OPSET)
    model.ir_version = 8
    onnx.save(model, path)


def external_data_model(out):
    # classifier.onnx with its weight in ext/classifier_ext.onnx.data, beside the model.
    os.makedirs(os.path.join(out, "ext"), exist_ok=True)
    path = os.path.join(out, "ext", "classifier_ext.onnx")
    classifier_model(path)
    model = onnx.load(path)
    # onnx moves only tensors held as raw_data: rewrite them so first.
    for i, t in enumerate(model.graph.initializer):
        model.graph.initializer[i].CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t), t.name))
    onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                    location="classifier_ext.onnx.data", size_threshold=0)
    saved = onnx.load(path, load_external_data=False)
    assert all(t.data_location == TensorProto.EXTERNAL for t in saved.graph.initializer), \
        "the weights did not go to external data"


def int_output_model(path):
    # y = int64(x), x: [N, 4]: an output `cnnc run` cannot show as scores.
    node = helper.make_node("Cast", ["x"], ["y"], name="cast", to=TensorProto.INT64)
    graph = helper.make_graph(
        [node],
        "int_out",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.INT64, ["N", 4])],
    )
    save(helper.make_model(graph, opset_imports=OPSET), path)


def infinite_output_model(path):
    # y = x / 0, x: [N, 4]: infinite (NaN for 0) outputs from a finite input.
    zero = helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])
    node = helper.make_node("Div", ["x", "zero"], ["y"], name="div")
    graph = helper.make_graph(
        [node],
        "infinite",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        [zero],
    )
    save(helper.make_model(graph, opset_imports=OPSET), path)


def scalar_input_model(path):
    # y = x for a scalar x: no batch dimension.
    node = helper.make_node("Identity", ["x"], ["y"], name="id")
    graph = helper.make_graph(
        [node],
        "scalar",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])],
    )
    save(helper.make_model(graph, opset_imports=OPSET), path)


def shapeless_input_model(path):
    # y = -x for an x whose type declares no shape, not even a rank: it takes any shape
    # (ONNX Runtime reports it as a scalar, `[]`).
    node = helper.make_node("Neg", ["x"], ["y"], name="neg")
    graph = helper.make_graph(
        [node],
        "shapeless",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    # onnx's checker wants every graph input to declare a shape; ONNX Runtime takes such a
    # model, and models like it are out there, which is what the test is about.
    save(helper.make_model(graph, opset_imports=OPSET), path, check=False)


def two_output_model(path):
    # y = x + x, z/sq = x * x and n = int64(x), x: [N, 4]: `cnnc run` shows and writes the
    # float ones, z/sq beside y (as y.z_sq.npy), and names n.
    add = helper.make_node("Add", ["x", "x"], ["y"], name="add")
    mul = helper.make_node("Mul", ["x", "x"], ["z/sq"], name="mul")
    cast = helper.make_node("Cast", ["x"], ["n"], name="cast", to=TensorProto.INT64)
    graph = helper.make_graph(
        [add, mul, cast],
        "two_outputs",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4]),
            helper.make_tensor_value_info("z/sq", TensorProto.FLOAT, ["N", 4]),
            helper.make_tensor_value_info("n", TensorProto.INT64, ["N", 4]),
        ],
    )
    save(helper.make_model(graph, opset_imports=OPSET), path)


def typed_outputs_model(path):
    # A foreign model's outputs of other types, x: [N, 4]: `cnnc run` writes each as a .npy
    # file of its type (the first to -o), and names the one NumPy has no type for (string).
    half = helper.make_tensor("half", TensorProto.FLOAT, [], [0.5])
    nodes = [
        helper.make_node("ArgMax", ["x"], ["idx"], name="argmax", axis=1, keepdims=0),
        helper.make_node("Greater", ["x", "half"], ["above"], name="greater"),
        helper.make_node("Cast", ["x"], ["f64"], name="to_f64", to=TensorProto.DOUBLE),
        helper.make_node("Cast", ["x"], ["i32"], name="to_i32", to=TensorProto.INT32),
        helper.make_node("Cast", ["x"], ["u8"], name="to_u8", to=TensorProto.UINT8),
        helper.make_node("Cast", ["x"], ["text"], name="to_text", to=TensorProto.STRING),
    ]
    graph = helper.make_graph(
        nodes,
        "typed_outputs",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [
            helper.make_tensor_value_info("idx", TensorProto.INT64, ["N"]),
            helper.make_tensor_value_info("above", TensorProto.BOOL, ["N", 4]),
            helper.make_tensor_value_info("f64", TensorProto.DOUBLE, ["N", 4]),
            helper.make_tensor_value_info("i32", TensorProto.INT32, ["N", 4]),
            helper.make_tensor_value_info("u8", TensorProto.UINT8, ["N", 4]),
            helper.make_tensor_value_info("text", TensorProto.STRING, ["N", 4]),
        ],
        [half],
    )
    save(helper.make_model(graph, opset_imports=OPSET), path)


def string_output_model(path):
    # text = string(x), x: [N, 4]: a first output `cnnc run` cannot write.
    node = helper.make_node("Cast", ["x"], ["text"], name="to_text", to=TensorProto.STRING)
    graph = helper.make_graph(
        [node],
        "string_out",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("text", TensorProto.STRING, ["N", 4])],
    )
    save(helper.make_model(graph, opset_imports=OPSET), path)


def scaled_input_model(path):
    # y = x, x: [N, 4], with the `cnnc_input` metadata of a model `cnnc train` wrote: its
    # pixels are divided by 255, so `cnnc run` warns of an input of raw pixels.
    node = helper.make_node("Identity", ["x"], ["y"], name="id")
    graph = helper.make_graph(
        [node],
        "scaled_input",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
    )
    model = helper.make_model(graph, opset_imports=OPSET)
    helper.set_model_props(model, {"cnnc_input": "float32 images [N, C, H, W]: the pixel values divided by 255 (0 to 1), nothing subtracted"})
    save(model, path)


def zero_batch_model(path):
    # y = x, x: [0, 4]: a batch fixed at 0, which `cnnc bench` names as the model's own.
    node = helper.make_node("Identity", ["x"], ["y"], name="id")
    graph = helper.make_graph(
        [node],
        "zero_batch",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [0, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [0, 4])],
    )
    save(helper.make_model(graph, opset_imports=OPSET), path)


def huge_input_model(path):
    # y = x, x: [1, 3, 10^6, 10^6]: an input of 12 TB fixed by the model, even at batch 1.
    node = helper.make_node("Identity", ["x"], ["y"], name="id")
    dims = [1, 3, 1000000, 1000000]
    graph = helper.make_graph(
        [node],
        "huge_input",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, dims)],
    )
    save(helper.make_model(graph, opset_imports=OPSET), path)


def colliding_outputs_model(path):
    # y = x, and `a/b` and `a_b`, whose file-safe names are the same: `cnnc run -o` refuses.
    nodes = [
        helper.make_node("Identity", ["x"], ["y"], name="y"),
        helper.make_node("Relu", ["x"], ["a/b"], name="relu"),
        helper.make_node("Neg", ["x"], ["a_b"], name="neg"),
    ]
    graph = helper.make_graph(
        nodes,
        "colliding_outputs",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 4]) for n in ["y", "a/b", "a_b"]],
    )
    save(helper.make_model(graph, opset_imports=OPSET), path)


def main(out):
    os.makedirs(out, exist_ok=True)
    conv_model(os.path.join(out, "conv.onnx"))
    classifier_model(os.path.join(out, "classifier.onnx"))
    step_model(os.path.join(out, "step.onnx"))
    reshape_model(os.path.join(out, "reshape.onnx"))
    cyclic_model(os.path.join(out, "cycle.onnx"))
    big_model(os.path.join(out, "big.onnx"))
    external_data_model(out)
    int_output_model(os.path.join(out, "int_out.onnx"))
    infinite_output_model(os.path.join(out, "infinite.onnx"))
    scalar_input_model(os.path.join(out, "scalar.onnx"))
    shapeless_input_model(os.path.join(out, "shapeless.onnx"))
    two_output_model(os.path.join(out, "two_outputs.onnx"))
    colliding_outputs_model(os.path.join(out, "colliding_outputs.onnx"))
    typed_outputs_model(os.path.join(out, "typed_outputs.onnx"))
    scaled_input_model(os.path.join(out, "scaled_input.onnx"))
    zero_batch_model(os.path.join(out, "zero_batch.onnx"))
    huge_input_model(os.path.join(out, "huge_input.onnx"))
    np.save(os.path.join(out, "raw_pixels.npy"), np.full((2, 4), 200.0, dtype=np.float32))
    string_output_model(os.path.join(out, "string_out.onnx"))
    np.save(os.path.join(out, "ramp.npy"), np.array([[0.0, 0.75, 2.5, 1.0], [3.25, 0.25, 0.5, 7.0]], dtype=np.float32))
    x = np.arange(9, dtype=np.float32).reshape(1, 1, 3, 3)
    np.save(os.path.join(out, "x.npy"), x)
    np.save(os.path.join(out, "x64.npy"), x.astype(np.float64))
    np.save(os.path.join(out, "xbe.npy"), x.astype(">f4"))
    np.save(os.path.join(out, "xint.npy"), x.astype(np.int64))
    np.save(os.path.join(out, "xfortran.npy"), np.asfortranarray(np.arange(18, dtype=np.float32).reshape(2, 1, 3, 3)))
    np.save(os.path.join(out, "wrong_shape.npy"), np.zeros((2, 3, 3, 3), dtype=np.float32))
    # One image of conv.onnx's [N, 1, 3, 3] without the batch axis.
    np.save(os.path.join(out, "unbatched.npy"), np.zeros((1, 3, 3), dtype=np.float32))
    np.save(os.path.join(out, "channels_last.npy"), np.zeros((2, 3, 3, 1), dtype=np.float32))
    np.save(os.path.join(out, "ones.npy"), np.ones((2, 4), dtype=np.float32))
    nan = x.copy()
    nan[0, 0, 1, 2] = np.nan
    nan[0, 0, 2, 2] = np.inf
    np.save(os.path.join(out, "nan.npy"), nan)
    with open(os.path.join(out, "notes.txt"), "w") as f:
        f.write("this is a text file, not a model\n")
    with open(os.path.join(out, "random.onnx"), "wb") as f:
        f.write(np.random.default_rng(0).bytes(4096))
    open(os.path.join(out, "empty.onnx"), "wb").close()


if __name__ == "__main__":
    main(sys.argv[1])
