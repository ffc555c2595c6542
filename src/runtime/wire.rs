//! Just enough protobuf wire format to tell an ONNX model from other bytes before ONNX Runtime
//! sees them, and to write the one-node model `cnnc doctor` loads. It knows nothing of the rest
//! of onnx.proto (that is `onnx/`'s job).

use super::error::RuntimeError;

/// ModelProto's field numbers that the check relies on (from onnx.proto).
const MODEL_IR_VERSION: u64 = 1;
const MODEL_GRAPH: u64 = 7;

const VARINT: u64 = 0;
const FIXED64: u64 = 1;
const LEN: u64 = 2;
const FIXED32: u64 = 5;

fn not_onnx(detail: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::InvalidModel {
        message: format!("not an ONNX model: {detail}"),
    }
}

fn read_varint(bytes: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*pos)?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// Walks one message's fields, calling `field(number, wire_type, payload)` for each (the payload
/// of a length-delimited field without its length); fails on anything that is not well-formed
/// wire format.
fn walk<'b>(bytes: &'b [u8], mut field: impl FnMut(u64, u64, &'b [u8])) -> Result<(), String> {
    let mut pos = 0;
    while pos < bytes.len() {
        let start = pos;
        let key = read_varint(bytes, &mut pos)
            .ok_or_else(|| format!("a truncated field key at byte {start}"))?;
        let (number, wire) = (key >> 3, key & 7);
        if number == 0 {
            return Err(format!("field number 0 at byte {start}"));
        }
        let payload_start = pos;
        match wire {
            VARINT => {
                read_varint(bytes, &mut pos)
                    .ok_or_else(|| format!("a truncated integer at byte {payload_start}"))?;
            }
            FIXED64 | FIXED32 => {
                let width = if wire == FIXED64 { 8 } else { 4 };
                if bytes.len() - pos < width {
                    return Err(format!(
                        "a truncated fixed-width value at byte {payload_start}"
                    ));
                }
                pos += width;
            }
            LEN => {
                let len = read_varint(bytes, &mut pos)
                    .ok_or_else(|| format!("a truncated length at byte {payload_start}"))?;
                let len = usize::try_from(len)
                    .ok()
                    .filter(|&l| l <= bytes.len() - pos)
                    .ok_or_else(|| {
                        format!(
                            "a length of {len} bytes at byte {payload_start} that runs past the \
                             end ({} bytes left)",
                            bytes.len() - pos
                        )
                    })?;
                field(number, wire, &bytes[pos..pos + len]);
                pos += len;
                continue;
            }
            other => return Err(format!("wire type {other} at byte {start}")),
        }
        field(number, wire, &bytes[payload_start..pos]);
    }
    Ok(())
}

/// Checks that `bytes` look like an ONNX ModelProto: well-formed protobuf with a graph.
pub fn check_model_bytes(bytes: &[u8]) -> Result<(), RuntimeError> {
    if bytes.is_empty() {
        return Err(not_onnx("the file is empty"));
    }
    let mut graph = None;
    let mut bad_field = None;
    walk(bytes, |number, wire, payload| match (number, wire) {
        (MODEL_GRAPH, LEN) => graph = Some(payload),
        (MODEL_IR_VERSION, VARINT) => {}
        (MODEL_GRAPH | MODEL_IR_VERSION, _) => {
            bad_field.get_or_insert(number);
        }
        _ => {}
    })
    .map_err(|e| not_onnx(format!("the bytes are not a protobuf message ({e})")))?;
    if let Some(number) = bad_field {
        return Err(not_onnx(format!(
            "field {number} of the message has the wrong type for an ONNX ModelProto"
        )));
    }
    let graph = graph.ok_or_else(|| {
        not_onnx("the protobuf message has no graph (ModelProto field 7); is this an ONNX file?")
    })?;
    walk(graph, |_, _, _| {})
        .map_err(|e| not_onnx(format!("its graph is not a protobuf message ({e})")))?;
    Ok(())
}

/// The graph inputs of the ONNX model `bytes` whose tensor type declares no shape at all
/// (not even a rank), by name. ONNX Runtime reports such an input as a scalar, `[]`; this
/// tells the two apart. Malformed parts are passed over (`check_model_bytes` judges them).
pub fn shapeless_inputs(bytes: &[u8]) -> Vec<String> {
    const GRAPH_INPUT: u64 = 11;
    const VALUE_INFO_NAME: u64 = 1;
    const VALUE_INFO_TYPE: u64 = 2;
    const TYPE_TENSOR: u64 = 1;
    const TENSOR_SHAPE: u64 = 2;
    // The payloads of the fields `number` of `message`, when length-delimited.
    fn fields(message: &[u8], number: u64) -> Vec<&[u8]> {
        let mut found = Vec::new();
        let _ = walk(message, |n, wire, payload| {
            if n == number && wire == LEN {
                found.push(payload);
            }
        });
        found
    }
    let mut names = Vec::new();
    for graph in fields(bytes, MODEL_GRAPH) {
        for input in fields(graph, GRAPH_INPUT) {
            let tensors: Vec<&[u8]> = fields(input, VALUE_INFO_TYPE)
                .into_iter()
                .flat_map(|t| fields(t, TYPE_TENSOR))
                .collect();
            let shapeless =
                !tensors.is_empty() && tensors.iter().all(|t| fields(t, TENSOR_SHAPE).is_empty());
            if shapeless {
                if let Some(name) = fields(input, VALUE_INFO_NAME).last() {
                    names.push(String::from_utf8_lossy(name).into_owned());
                }
            }
        }
    }
    names
}

/// Whether `prefix`, the first bytes of a file too long to check whole, begins as an ONNX
/// ModelProto: `ir_version` (field 1, an integer) first, as every serializer writes a
/// message's fields in number order, then well-formed fields as far as `prefix` goes (the
/// last may run past its end). For telling a model about to be replaced from another file.
pub fn starts_like_model(prefix: &[u8]) -> bool {
    if prefix.first() != Some(&((MODEL_IR_VERSION << 3) as u8 | VARINT as u8)) {
        return false;
    }
    let mut pos = 0;
    while pos < prefix.len() {
        // Cut by the end of `prefix`: well-formed as far as it goes.
        let Some(key) = read_varint(prefix, &mut pos) else {
            return pos >= prefix.len();
        };
        if key >> 3 == 0 {
            return false;
        }
        match key & 7 {
            VARINT => {
                if read_varint(prefix, &mut pos).is_none() {
                    return pos >= prefix.len();
                }
            }
            FIXED64 => pos += 8,
            FIXED32 => pos += 4,
            LEN => {
                let Some(len) = read_varint(prefix, &mut pos) else {
                    return pos >= prefix.len();
                };
                pos = usize::try_from(len).map_or(usize::MAX, |len| pos.saturating_add(len));
            }
            _ => return false,
        }
    }
    true
}

/// Encodes a protobuf message by hand: enough for [`tiny_model`].
#[derive(Default)]
struct Msg(Vec<u8>);

fn push_varint(buf: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            buf.push(byte);
            return;
        }
        buf.push(byte | 0x80);
    }
}

impl Msg {
    fn varint(mut self, number: u64, value: u64) -> Self {
        push_varint(&mut self.0, (number << 3) | VARINT);
        push_varint(&mut self.0, value);
        self
    }

    fn bytes(mut self, number: u64, payload: &[u8]) -> Self {
        push_varint(&mut self.0, (number << 3) | LEN);
        push_varint(&mut self.0, payload.len() as u64);
        self.0.extend_from_slice(payload);
        self
    }

    fn string(self, number: u64, s: &str) -> Self {
        self.bytes(number, s.as_bytes())
    }

    fn msg(self, number: u64, m: Msg) -> Self {
        self.bytes(number, &m.0)
    }
}

/// A float tensor ValueInfoProto `name` of shape `[N, 4]`.
fn value_info(name: &str) -> Msg {
    // TensorShapeProto.Dimension: dim_value = 1, dim_param = 2.
    let shape = Msg::default()
        .msg(1, Msg::default().string(2, "N"))
        .msg(1, Msg::default().varint(1, 4));
    // TypeProto.Tensor: elem_type = 1 (FLOAT is 1), shape = 2.
    let tensor = Msg::default().varint(1, 1).msg(2, shape);
    // TypeProto: tensor_type = 1. ValueInfoProto: name = 1, type = 2.
    Msg::default()
        .string(1, name)
        .msg(2, Msg::default().msg(1, tensor))
}

/// A one-node ONNX model (`y = Relu(x)`, x and y float `[N, 4]`, opset 17), used by `doctor`
/// to try the CPU and CUDA execution providers without a model file.
pub fn tiny_model() -> Vec<u8> {
    // NodeProto: input = 1, output = 2, name = 3, op_type = 4.
    let node = Msg::default()
        .string(1, "x")
        .string(2, "y")
        .string(3, "relu")
        .string(4, "Relu");
    // GraphProto: node = 1, name = 2, input = 11, output = 12.
    let graph = Msg::default()
        .msg(1, node)
        .string(2, "cnnc_doctor")
        .msg(11, value_info("x"))
        .msg(12, value_info("y"));
    // OperatorSetIdProto: domain = 1, version = 2.
    let opset = Msg::default().string(1, "").varint(2, 17);
    // ModelProto: ir_version = 1, producer_name = 2, graph = 7, opset_import = 8.
    Msg::default()
        .varint(MODEL_IR_VERSION, 8)
        .string(2, "cnnc")
        .msg(MODEL_GRAPH, graph)
        .msg(8, opset)
        .0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_model_passes_the_check() {
        check_model_bytes(&tiny_model()).unwrap();
    }

    /// Only an input whose tensor type has no shape field is shapeless: a declared scalar
    /// (a shape with no dimensions) and a shaped input are not.
    #[test]
    fn shapeless_inputs_are_told_from_scalars() {
        assert!(shapeless_inputs(&tiny_model()).is_empty());
        let float = || Msg::default().varint(1, 1);
        let input = |name: &str, tensor: Msg| {
            Msg::default()
                .string(1, name)
                .msg(2, Msg::default().msg(1, tensor))
        };
        let graph = Msg::default()
            .msg(11, input("open", float()))
            .msg(11, input("scalar", float().msg(2, Msg::default())))
            .msg(11, value_info("shaped"));
        let model = Msg::default().varint(1, 8).msg(7, graph);
        check_model_bytes(&model.0).unwrap();
        assert_eq!(shapeless_inputs(&model.0), ["open"]);
    }

    #[test]
    fn lengths_over_127_bytes_encode_as_varints() {
        let payload = vec![7u8; 300];
        let m = Msg::default().bytes(1, &payload);
        // key 0x0a, then 300 = 0b10_0101100 → [0xac, 0x02].
        assert_eq!(&m.0[..3], &[0x0a, 0xac, 0x02]);
        let mut seen = 0;
        walk(&m.0, |n, w, p| {
            assert_eq!((n, w, p.len()), (1, LEN, 300));
            seen += 1;
        })
        .unwrap();
        assert_eq!(seen, 1);
    }

    #[test]
    fn a_models_first_bytes_are_told_from_other_files() {
        let model = tiny_model();
        for cut in [1, 2, 5, model.len() / 2, model.len()] {
            assert!(starts_like_model(&model[..cut]), "{cut}");
        }
        for other in [
            &b""[..],
            b"precious notes\n",
            b"{\"__metadata__\": {}}",
            &[0x08, 0x96, 0x01, 0x00][..],
            &[0x08, 0x01, 0x0b][..],
        ] {
            assert!(!starts_like_model(other), "{other:?}");
        }
    }

    #[test]
    fn other_bytes_are_not_onnx() {
        for (bytes, expect) in [
            (&b""[..], "the file is empty"),
            (b"hello, this is a text file\n", "not an ONNX model"),
            (&[0xff, 0xff, 0xff][..], "not a protobuf message"),
            // A valid message (field 1 = 150) without a graph.
            (&[0x08, 0x96, 0x01][..], "no graph"),
        ] {
            let err = check_model_bytes(bytes).unwrap_err();
            assert!(err.is_user_input());
            assert!(err.to_string().contains(expect), "{bytes:?}: {err}");
        }
    }
}
