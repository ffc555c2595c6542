//! Hand-written prost messages for the subset of `onnx.proto` (proto2, ONNX 1.23) that cnnc
//! writes, with builder helpers beside them.
//!
//! Field numbers are copied from onnx.proto; a wrong number silently produces garbage, so
//! the unit tests decode known byte strings. Repeated scalar fields that onnx.proto does not
//! declare `packed` (proto2's default is unpacked) are written unpacked, as protoc would.
//! Scalar attribute values are `Option`s: proto2 records presence, and ONNX's checker
//! requires exactly one value field in an attribute, so an `i` of 0 must still be written.

/// `TensorProto.DataType` values used by cnnc.
pub mod data_type {
    pub const FLOAT: i32 = 1;
    pub const INT64: i32 = 7;
}

/// `TensorProto.DataLocation`.
pub mod data_location {
    pub const DEFAULT: i32 = 0;
    pub const EXTERNAL: i32 = 1;
}

/// `AttributeProto.AttributeType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum AttributeType {
    Undefined = 0,
    Float = 1,
    Int = 2,
    String = 3,
    Tensor = 4,
    Graph = 5,
    Floats = 6,
    Ints = 7,
    Strings = 8,
    Tensors = 9,
    Graphs = 10,
    SparseTensor = 11,
    SparseTensors = 12,
    TypeProto = 13,
    TypeProtos = 14,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelProto {
    #[prost(int64, tag = "1")]
    pub ir_version: i64,
    #[prost(message, repeated, tag = "8")]
    pub opset_import: Vec<OperatorSetIdProto>,
    #[prost(string, tag = "2")]
    pub producer_name: String,
    #[prost(string, tag = "3")]
    pub producer_version: String,
    #[prost(string, tag = "4")]
    pub domain: String,
    #[prost(int64, tag = "5")]
    pub model_version: i64,
    #[prost(string, tag = "6")]
    pub doc_string: String,
    #[prost(message, optional, tag = "7")]
    pub graph: Option<GraphProto>,
    #[prost(message, repeated, tag = "14")]
    pub metadata_props: Vec<StringStringEntryProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct OperatorSetIdProto {
    #[prost(string, tag = "1")]
    pub domain: String,
    #[prost(int64, tag = "2")]
    pub version: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StringStringEntryProto {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeProto>,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorProto>,
    #[prost(string, tag = "10")]
    pub doc_string: String,
    #[prost(message, repeated, tag = "11")]
    pub input: Vec<ValueInfoProto>,
    #[prost(message, repeated, tag = "12")]
    pub output: Vec<ValueInfoProto>,
    #[prost(message, repeated, tag = "13")]
    pub value_info: Vec<ValueInfoProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct NodeProto {
    #[prost(string, repeated, tag = "1")]
    pub input: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    pub output: Vec<String>,
    #[prost(string, tag = "3")]
    pub name: String,
    #[prost(string, tag = "4")]
    pub op_type: String,
    #[prost(string, tag = "7")]
    pub domain: String,
    #[prost(message, repeated, tag = "5")]
    pub attribute: Vec<AttributeProto>,
    #[prost(string, tag = "6")]
    pub doc_string: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct AttributeProto {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "13")]
    pub doc_string: String,
    #[prost(enumeration = "AttributeType", optional, tag = "20")]
    pub r#type: Option<i32>,
    #[prost(float, optional, tag = "2")]
    pub f: Option<f32>,
    #[prost(int64, optional, tag = "3")]
    pub i: Option<i64>,
    #[prost(bytes = "vec", optional, tag = "4")]
    pub s: Option<Vec<u8>>,
    #[prost(message, optional, tag = "5")]
    pub t: Option<TensorProto>,
    #[prost(float, repeated, packed = "false", tag = "7")]
    pub floats: Vec<f32>,
    #[prost(int64, repeated, packed = "false", tag = "8")]
    pub ints: Vec<i64>,
    #[prost(bytes = "vec", repeated, tag = "9")]
    pub strings: Vec<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorProto {
    #[prost(int64, repeated, packed = "false", tag = "1")]
    pub dims: Vec<i64>,
    #[prost(int32, tag = "2")]
    pub data_type: i32,
    #[prost(float, repeated, tag = "4")]
    pub float_data: Vec<f32>,
    #[prost(int64, repeated, tag = "7")]
    pub int64_data: Vec<i64>,
    #[prost(string, tag = "8")]
    pub name: String,
    #[prost(string, tag = "12")]
    pub doc_string: String,
    #[prost(bytes = "vec", tag = "9")]
    pub raw_data: Vec<u8>,
    #[prost(message, repeated, tag = "13")]
    pub external_data: Vec<StringStringEntryProto>,
    /// [`data_location`]: `DEFAULT` (0) or `EXTERNAL` (1).
    #[prost(int32, tag = "14")]
    pub data_location: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ValueInfoProto {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub r#type: Option<TypeProto>,
    #[prost(string, tag = "3")]
    pub doc_string: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TypeProto {
    #[prost(oneof = "type_proto::Value", tags = "1")]
    pub value: Option<type_proto::Value>,
    #[prost(string, tag = "6")]
    pub denotation: String,
}

pub mod type_proto {
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        #[prost(message, tag = "1")]
        TensorType(Tensor),
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Tensor {
        #[prost(int32, optional, tag = "1")]
        pub elem_type: Option<i32>,
        #[prost(message, optional, tag = "2")]
        pub shape: Option<super::TensorShapeProto>,
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorShapeProto {
    #[prost(message, repeated, tag = "1")]
    pub dim: Vec<tensor_shape_proto::Dimension>,
}

pub mod tensor_shape_proto {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Dimension {
        #[prost(oneof = "dimension::Value", tags = "1, 2")]
        pub value: Option<dimension::Value>,
        #[prost(string, tag = "3")]
        pub denotation: String,
    }

    pub mod dimension {
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Value {
            #[prost(int64, tag = "1")]
            DimValue(i64),
            #[prost(string, tag = "2")]
            DimParam(String),
        }
    }
}

// ---- builders ----

/// One dimension of a value's shape: a fixed size or a symbolic name (`N`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dim {
    Value(i64),
    Param(String),
}

impl AttributeProto {
    pub fn float(name: &str, f: f32) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            r#type: Some(AttributeType::Float as i32),
            f: Some(f),
            ..Default::default()
        }
    }

    pub fn int(name: &str, i: i64) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            r#type: Some(AttributeType::Int as i32),
            i: Some(i),
            ..Default::default()
        }
    }

    pub fn ints(name: &str, ints: impl IntoIterator<Item = i64>) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            r#type: Some(AttributeType::Ints as i32),
            ints: ints.into_iter().collect(),
            ..Default::default()
        }
    }

    pub fn string(name: &str, s: &str) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            r#type: Some(AttributeType::String as i32),
            s: Some(s.as_bytes().to_vec()),
            ..Default::default()
        }
    }
}

impl TensorProto {
    /// A float tensor stored as little-endian `raw_data`.
    pub fn from_f32(name: &str, dims: &[usize], data: &[f32]) -> TensorProto {
        debug_assert_eq!(dims.iter().product::<usize>(), data.len());
        TensorProto {
            raw_data: f32_le_bytes(data),
            ..TensorProto::f32_without_data(name, dims)
        }
    }

    /// A float tensor's name and shape, its `raw_data` still empty (filled in, or streamed,
    /// later).
    pub fn f32_without_data(name: &str, dims: &[usize]) -> TensorProto {
        TensorProto {
            name: name.into(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: data_type::FLOAT,
            ..Default::default()
        }
    }

    /// An int64 tensor stored as little-endian `raw_data`.
    pub fn from_i64(name: &str, dims: &[usize], data: &[i64]) -> TensorProto {
        debug_assert_eq!(dims.iter().product::<usize>(), data.len());
        TensorProto {
            name: name.into(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: data_type::INT64,
            raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        }
    }
}

impl ValueInfoProto {
    /// A tensor value of element type `elem_type` ([`data_type`]) and the given shape.
    pub fn tensor(name: &str, elem_type: i32, dims: &[Dim]) -> ValueInfoProto {
        use tensor_shape_proto::{dimension, Dimension};
        let dim = dims
            .iter()
            .map(|d| Dimension {
                value: Some(match d {
                    Dim::Value(v) => dimension::Value::DimValue(*v),
                    Dim::Param(p) => dimension::Value::DimParam(p.clone()),
                }),
                denotation: String::new(),
            })
            .collect();
        ValueInfoProto {
            name: name.into(),
            r#type: Some(TypeProto {
                value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                    elem_type: Some(elem_type),
                    shape: Some(TensorShapeProto { dim }),
                })),
                denotation: String::new(),
            }),
            doc_string: String::new(),
        }
    }
}

impl StringStringEntryProto {
    pub fn new(key: &str, value: impl Into<String>) -> StringStringEntryProto {
        StringStringEntryProto {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// Little-endian bytes of `data`, written in place (a memcpy on little-endian machines).
pub fn f32_le_bytes(data: &[f32]) -> Vec<u8> {
    let mut out = vec![0u8; data.len() * 4];
    for (chunk, v) in out.chunks_exact_mut(4).zip(data) {
        chunk.copy_from_slice(&v.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    // Expected bytes are written from the protobuf wire format by hand:
    // key = (field << 3) | wire type (0 varint, 2 length-delimited, 5 fixed32).

    #[test]
    fn opset_import_field_numbers() {
        let m = OperatorSetIdProto {
            domain: String::new(),
            version: 17,
        };
        assert_eq!(m.encode_to_vec(), vec![0x10, 17]);
        let m = ModelProto {
            ir_version: 8,
            opset_import: vec![m],
            ..Default::default()
        };
        // ir_version = 1 (varint), opset_import = 8 (message).
        assert_eq!(m.encode_to_vec(), vec![0x08, 8, 0x42, 2, 0x10, 17]);
    }

    #[test]
    fn attribute_field_numbers_and_presence() {
        let a = AttributeProto::int("group", 0);
        // name = 1, i = 3 (present although 0), type = 20 (key 0xa0 0x01) = INT (2).
        assert_eq!(
            a.encode_to_vec(),
            vec![0x0a, 5, b'g', b'r', b'o', b'u', b'p', 0x18, 0, 0xa0, 0x01, 2]
        );
        let a = AttributeProto::ints("k", [3, 1]);
        // ints = 8, unpacked: one key per element; type INTS = 7.
        assert_eq!(
            a.encode_to_vec(),
            vec![0x0a, 1, b'k', 0x40, 3, 0x40, 1, 0xa0, 0x01, 7]
        );
        let a = AttributeProto::float("alpha", 1.0);
        let mut want = vec![0x0a, 5, b'a', b'l', b'p', b'h', b'a', 0x15];
        want.extend(1.0f32.to_le_bytes());
        want.extend([0xa0, 0x01, 1]);
        assert_eq!(a.encode_to_vec(), want);
    }

    #[test]
    fn tensor_field_numbers() {
        let t = TensorProto::from_i64("s", &[1], &[2]);
        // dims = 1 (unpacked), data_type = 2, name = 8, raw_data = 9.
        let mut want = vec![0x08, 1, 0x10, 7, 0x42, 1, b's', 0x4a, 8];
        want.extend(2i64.to_le_bytes());
        assert_eq!(t.encode_to_vec(), want);
        let t = TensorProto {
            data_location: data_location::EXTERNAL,
            external_data: vec![StringStringEntryProto::new("a", "b")],
            ..Default::default()
        };
        // external_data = 13 (key 0x6a), data_location = 14 (key 0x70).
        assert_eq!(
            t.encode_to_vec(),
            vec![0x6a, 6, 0x0a, 1, b'a', 0x12, 1, b'b', 0x70, 1]
        );
    }

    #[test]
    fn value_info_field_numbers() {
        let v = ValueInfoProto::tensor(
            "x",
            data_type::FLOAT,
            &[Dim::Param("N".into()), Dim::Value(3)],
        );
        // name = 1; type = 2 { tensor_type = 1 { elem_type = 1, shape = 2 { dim = 1 {
        // dim_param = 2 } dim = 1 { dim_value = 1 } } } }
        let want = vec![
            0x0a, 1, b'x', 0x12, 15, 0x0a, 13, 0x08, 1, 0x12, 9, 0x0a, 3, 0x12, 1, b'N', 0x0a, 2,
            0x08, 3,
        ];
        assert_eq!(v.encode_to_vec(), want);
        assert_eq!(ValueInfoProto::decode(&want[..]).unwrap(), v);
    }

    #[test]
    fn graph_and_node_field_numbers() {
        let n = NodeProto {
            input: vec!["a".into()],
            output: vec!["b".into()],
            name: "n".into(),
            op_type: "Relu".into(),
            doc_string: "d".into(),
            ..Default::default()
        };
        let want_node = vec![
            0x0a, 1, b'a', 0x12, 1, b'b', 0x1a, 1, b'n', 0x22, 4, b'R', b'e', b'l', b'u', 0x32, 1,
            b'd',
        ];
        assert_eq!(n.encode_to_vec(), want_node);
        let g = GraphProto {
            node: vec![n],
            name: "g".into(),
            ..Default::default()
        };
        let mut want = vec![0x0a, want_node.len() as u8];
        want.extend(&want_node);
        want.extend([0x12, 1, b'g']);
        assert_eq!(g.encode_to_vec(), want);
        // initializer = 5, input = 11, output = 12, value_info = 13, metadata_props = 14.
        let g = GraphProto {
            initializer: vec![TensorProto::default()],
            input: vec![ValueInfoProto::default()],
            output: vec![ValueInfoProto::default()],
            value_info: vec![ValueInfoProto::default()],
            ..Default::default()
        };
        assert_eq!(g.encode_to_vec(), vec![0x2a, 0, 0x5a, 0, 0x62, 0, 0x6a, 0]);
        let m = ModelProto {
            producer_name: "p".into(),
            graph: Some(GraphProto::default()),
            metadata_props: vec![StringStringEntryProto::default()],
            ..Default::default()
        };
        assert_eq!(m.encode_to_vec(), vec![0x12, 1, b'p', 0x3a, 0, 0x72, 0]);
    }
}
