//! NumPy `.npy` files (format versions 1–3): read float32 (and float64, converted) arrays in C
//! order, write float32 and the other numeric and bool types a model's outputs may have. Written here rather than taken from a crate because the subset is
//! small and its error messages matter: they name the dtype or order that was refused.

use crate::fsutil::Worth;
use std::fmt;
use std::io::Write;

const MAGIC: &[u8] = b"\x93NUMPY";

/// Why a `.npy` file was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpyError(pub String);

impl fmt::Display for NpyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NpyError {}

fn err<T>(message: impl Into<String>) -> Result<T, NpyError> {
    Err(NpyError(message.into()))
}

/// A float32 array read from a `.npy` file.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
    /// What the file's array was converted from to become little-endian float32 in C order
    /// (`Some("float64")`, `Some("big-endian")`), else `None`.
    pub converted_from: Option<String>,
}

/// The elements of `data`, laid out with the first index fastest, in C order (the last
/// index fastest).
fn fortran_to_c(data: &[f32], shape: &[usize]) -> Vec<f32> {
    // Where a step of each index moves in the Fortran layout.
    let mut strides = Vec::with_capacity(shape.len());
    let mut step = 1;
    for &d in shape {
        strides.push(step);
        step *= d;
    }
    let mut index = vec![0usize; shape.len()];
    let mut offset = 0;
    let mut out = Vec::with_capacity(data.len());
    for _ in 0..data.len() {
        out.push(data[offset]);
        // The next index in C order: the last axis first, carrying leftwards.
        for axis in (0..shape.len()).rev() {
            index[axis] += 1;
            offset += strides[axis];
            if index[axis] < shape[axis] {
                break;
            }
            offset -= strides[axis] * shape[axis];
            index[axis] = 0;
        }
    }
    out
}

/// How much of a `.npy` file beginning with `prefix` is worth reading: its whole length
/// (header and data) once `prefix` holds the header, so that a file longer than its header
/// declares is refused after one byte more, not read to the end; nothing more when the header
/// is malformed (then [`parse`] says why).
pub fn bytes_worth_reading(prefix: &[u8]) -> Worth {
    match header(prefix) {
        Ok((_, end, _, _, expected)) => Worth::Length((end as u64).saturating_add(expected as u64)),
        Err(_) if prefix.len() < 12 => Worth::ReadOn,
        Err(_) => {
            let header_end = match prefix[6] {
                1 => 10 + u64::from(u16::from_le_bytes([prefix[8], prefix[9]])),
                2 | 3 => {
                    12 + u64::from(u32::from_le_bytes([
                        prefix[8], prefix[9], prefix[10], prefix[11],
                    ]))
                }
                _ => 0,
            };
            // Still reading a header (of a sensible size), or one that is malformed.
            let incomplete = prefix.starts_with(MAGIC)
                && (prefix.len() as u64) < header_end
                && header_end <= 1 << 20;
            if incomplete {
                Worth::ReadOn
            } else {
                Worth::Stop
            }
        }
    }
}

/// The header of a `.npy` file: it, where the data starts, the element type, whether it is
/// little-endian, and the data's length in bytes.
fn header(bytes: &[u8]) -> Result<(Header, usize, Float, bool, usize), NpyError> {
    if bytes.len() < 10 && bytes.starts_with(MAGIC) {
        return err("truncated .npy header");
    }
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return err("not a .npy file (it does not start with the NumPy magic \\x93NUMPY)");
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let (header_len, header_start) = match major {
        1 => (
            usize::from(u16::from_le_bytes([bytes[8], bytes[9]])),
            10usize,
        ),
        2 | 3 if bytes.len() < 12 => return err("truncated .npy header"),
        2 | 3 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        _ => return err(format!("unsupported .npy format version {major}.{minor}")),
    };
    let header_end = header_start
        .checked_add(header_len)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| NpyError("truncated .npy header".into()))?;
    let header = std::str::from_utf8(&bytes[header_start..header_end])
        .map_err(|_| NpyError("the .npy header is not text".into()))?;
    let header = Header::parse(header)?;
    let (kind, little_endian) = dtype(&header.descr)?;
    let count = header
        .shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| too_large(&header))?;
    let width = match kind {
        Float::F32 => 4,
        Float::F64 => 8,
    };
    let expected = count.checked_mul(width).ok_or_else(|| too_large(&header))?;
    Ok((header, header_end, kind, little_endian, expected))
}

/// Parses the bytes of a `.npy` file.
pub fn parse(bytes: &[u8]) -> Result<NpyArray, NpyError> {
    let (header, header_end, kind, little_endian, expected) = header(bytes)?;
    let body = &bytes[header_end..];
    if body.len() > expected {
        return err(format!(
            "the data of a {} array of shape {:?} should be {expected} bytes, and the file \
             holds more",
            kind.name(),
            header.shape,
        ));
    }
    if body.len() != expected {
        return err(format!(
            "the data of a {} array of shape {:?} should be {expected} bytes, the file has {}",
            kind.name(),
            header.shape,
            body.len()
        ));
    }
    let data: Vec<f32> = match kind {
        Float::F32 => body
            .chunks_exact(4)
            .map(|c| {
                let b = [c[0], c[1], c[2], c[3]];
                if little_endian {
                    f32::from_le_bytes(b)
                } else {
                    f32::from_be_bytes(b)
                }
            })
            .collect(),
        Float::F64 => body
            .chunks_exact(8)
            .map(|c| {
                let b: [u8; 8] = c.try_into().expect("chunks of 8");
                let v = if little_endian {
                    f64::from_le_bytes(b)
                } else {
                    f64::from_be_bytes(b)
                };
                v as f32
            })
            .collect(),
    };
    // Fortran order (`np.asfortranarray`, a transposed view saved as it is): the first
    // index runs fastest; ONNX Runtime takes C order.
    let data = if header.fortran_order {
        fortran_to_c(&data, &header.shape)
    } else {
        data
    };
    Ok(NpyArray {
        shape: header.shape,
        data,
        converted_from: converted_from(kind, little_endian, header.fortran_order),
    })
}

/// What an array was converted from to become little-endian float32 in C order, if
/// anything: "float64", "big-endian", "big-endian float64 in Fortran order", ...
fn converted_from(kind: Float, little_endian: bool, fortran_order: bool) -> Option<String> {
    let mut from: Vec<&str> = Vec::new();
    if !little_endian {
        from.push("big-endian");
    }
    if let Float::F64 = kind {
        from.push("float64");
    }
    if fortran_order {
        from.push(if from.is_empty() {
            "Fortran order"
        } else {
            "in Fortran order"
        });
    }
    (!from.is_empty()).then(|| from.join(" "))
}

/// Writes a float32 array in C order as a version 1.0 `.npy` file.
pub fn write_f32(out: &mut impl Write, shape: &[usize], data: &[f32]) -> std::io::Result<()> {
    write(out, shape, data)
}

/// An element type `.npy` files hold, with NumPy's name for it (its `descr`).
pub trait NpyElement: Copy {
    /// NumPy's type string: byte order, kind, size (`<f4`, `|b1`).
    const DESCR: &'static str;
    /// Appends the value's little-endian bytes.
    fn put(self, out: &mut Vec<u8>);
}

macro_rules! npy_element {
    ($($t:ty => $descr:literal),* $(,)?) => {$(
        impl NpyElement for $t {
            const DESCR: &'static str = $descr;
            fn put(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
    )*};
}

npy_element!(
    f32 => "<f4", f64 => "<f8",
    i8 => "|i1", i16 => "<i2", i32 => "<i4", i64 => "<i8",
    u8 => "|u1", u16 => "<u2", u32 => "<u4", u64 => "<u8",
);

impl NpyElement for bool {
    const DESCR: &'static str = "|b1";
    fn put(self, out: &mut Vec<u8>) {
        out.push(u8::from(self));
    }
}

/// The `.npy` bytes of the values of an array, in order: what follows the header.
pub fn body<T: NpyElement>(data: &[T]) -> Vec<u8> {
    let mut body = Vec::with_capacity(std::mem::size_of_val(data));
    for &v in data {
        v.put(&mut body);
    }
    body
}

/// Writes an array in C order as a version 1.0 `.npy` file.
pub fn write<T: NpyElement>(
    out: &mut impl Write,
    shape: &[usize],
    data: &[T],
) -> std::io::Result<()> {
    assert_eq!(
        shape.iter().product::<usize>(),
        data.len(),
        "the shape and the data disagree"
    );
    write_body(out, shape, T::DESCR, &body(data))
}

/// Writes a `.npy` file of version 1.0 from its parts: the shape, NumPy's name of the element
/// type (`<f4`, see [`NpyElement`]) and the values' bytes in C order.
pub fn write_body(
    out: &mut impl Write,
    shape: &[usize],
    descr: &str,
    body: &[u8],
) -> std::io::Result<()> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let tuple = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {tuple}, }}");
    // NumPy pads the header with spaces and a newline so that the data starts 64-byte aligned.
    let unpadded = MAGIC.len() + 2 + 2 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let header_len = u16::try_from(header.len()).map_err(|_| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "shape too long for .npy")
    })?;
    out.write_all(MAGIC)?;
    out.write_all(&[1, 0])?;
    out.write_all(&header_len.to_le_bytes())?;
    out.write_all(header.as_bytes())?;
    out.write_all(body)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Float {
    F32,
    F64,
}

impl Float {
    fn name(self) -> &'static str {
        match self {
            Float::F32 => "float32",
            Float::F64 => "float64",
        }
    }
}

/// The float kind and byte order of a dtype descriptor such as `<f4`; others are refused by name.
fn dtype(descr: &str) -> Result<(Float, bool), NpyError> {
    let (order, code) = match descr.chars().next() {
        Some(c @ ('<' | '>' | '|' | '=')) => (c, &descr[1..]),
        _ => ('|', descr),
    };
    // '=' is the writer's native order; NumPy writes '<' on every little-endian machine.
    let little = order != '>';
    match code {
        "f4" => Ok((Float::F32, little)),
        "f8" => Ok((Float::F64, little)),
        _ => err(format!(
            "the array has dtype {} ('{}'); cnnc takes float32 (float64 is converted), \
             e.g. np.save(path, x.astype(np.float32))",
            shortened(&numpy_name(code)),
            shortened(descr)
        )),
    }
}

/// The error of a shape whose array would not fit in memory's addresses.
fn too_large(header: &Header) -> NpyError {
    NpyError(format!(
        "shape {} is too large",
        shortened(header.shape_written.trim())
    ))
}

/// How much of a header's text an error quotes: a header may be megabytes long.
const QUOTED_CHARS: usize = 200;

/// `text` as an error quotes it: whole up to [`QUOTED_CHARS`] characters, else its start,
/// and how long it is.
fn shortened(text: &str) -> String {
    match text.char_indices().nth(QUOTED_CHARS) {
        None => text.to_string(),
        Some((at, _)) => format!("{}… ({} bytes in all)", &text[..at], text.len()),
    }
}

fn numpy_name(code: &str) -> String {
    // The first character is the kind; a header written by hand may put any text here.
    let split = code.char_indices().nth(1).map_or(code.len(), |(i, _)| i);
    let (kind, size) = code.split_at(split);
    let bits = size.parse::<usize>().ok().and_then(|b| b.checked_mul(8));
    match (kind, bits) {
        ("i", Some(b)) => format!("int{b}"),
        ("u", Some(b)) => format!("uint{b}"),
        ("f", Some(b @ (16 | 32 | 64 | 128))) => format!("float{b}"),
        ("c", Some(b)) => format!("complex{b}"),
        ("b", _) => "bool".into(),
        ("O", _) => "object".into(),
        ("U", _) | ("S", _) => "string".into(),
        _ => format!("'{code}'"),
    }
}

/// The three keys of a `.npy` header dictionary.
#[derive(Debug)]
struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
    /// The shape as the header writes it (a size beyond usize is read as usize::MAX: the
    /// errors quote this).
    shape_written: String,
}

impl Header {
    /// Parses the Python dict literal NumPy writes, e.g.
    /// `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`.
    fn parse(text: &str) -> Result<Header, NpyError> {
        let bad = |what: &str| {
            NpyError(format!(
                "malformed .npy header ({}): {}",
                shortened(what),
                shortened(text.trim())
            ))
        };
        let mut p = Parser {
            s: text.trim().as_bytes(),
            i: 0,
        };
        let (mut descr, mut fortran, mut shape) = (None, None, None);
        let mut shape_written = String::new();
        p.expect(b'{').ok_or_else(|| bad("no opening brace"))?;
        loop {
            p.skip_ws();
            if p.eat(b'}') {
                break;
            }
            let key = p.string().ok_or_else(|| bad("a key is not a string"))?;
            p.skip_ws();
            p.expect(b':').ok_or_else(|| bad("no colon after a key"))?;
            p.skip_ws();
            match key.as_str() {
                "descr" => {
                    if p.peek() == Some(b'[') {
                        return err("structured arrays (record dtypes) are not supported");
                    }
                    descr = Some(p.string().ok_or_else(|| bad("descr is not a string"))?);
                }
                "fortran_order" => {
                    fortran = Some(p.boolean().ok_or_else(|| bad("fortran_order"))?);
                }
                "shape" => {
                    let start = p.i;
                    let dims = p
                        .tuple()
                        .ok_or_else(|| bad("shape is not a tuple of sizes (whole numbers ≥ 0)"))?;
                    shape_written = String::from_utf8_lossy(&p.s[start..p.i]).into_owned();
                    shape = Some(dims)
                }
                _ => return Err(bad(&format!("unknown key '{key}'"))),
            }
            p.skip_ws();
            if !p.eat(b',') {
                p.skip_ws();
                p.expect(b'}').ok_or_else(|| bad("no closing brace"))?;
                break;
            }
        }
        Ok(Header {
            descr: descr.ok_or_else(|| bad("no descr"))?,
            fortran_order: fortran.ok_or_else(|| bad("no fortran_order"))?,
            shape: shape.ok_or_else(|| bad("no shape"))?,
            shape_written,
        })
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) -> bool {
        let hit = self.peek() == Some(c);
        if hit {
            self.i += 1;
        }
        hit
    }
    fn expect(&mut self, c: u8) -> Option<()> {
        self.eat(c).then_some(())
    }
    fn string(&mut self) -> Option<String> {
        let quote = self.peek().filter(|&q| q == b'\'' || q == b'"')?;
        self.i += 1;
        let start = self.i;
        while self.peek()? != quote {
            self.i += 1;
        }
        let s = std::str::from_utf8(&self.s[start..self.i])
            .ok()?
            .to_string();
        self.i += 1;
        Some(s)
    }
    fn boolean(&mut self) -> Option<bool> {
        for (word, value) in [(&b"True"[..], true), (&b"False"[..], false)] {
            if self.s[self.i..].starts_with(word) {
                self.i += word.len();
                return Some(value);
            }
        }
        None
    }
    fn tuple(&mut self) -> Option<Vec<usize>> {
        self.expect(b'(')?;
        let mut dims = Vec::new();
        loop {
            self.skip_ws();
            if self.eat(b')') {
                return Some(dims);
            }
            let start = self.i;
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.i += 1;
            }
            // NumPy 1.x on some platforms wrote `3L`.
            let digits = std::str::from_utf8(&self.s[start..self.i]).ok()?;
            if digits.is_empty() {
                return None;
            }
            // A dimension beyond usize cannot be a real array: saturate, and let the size
            // check say the array is too large.
            dims.push(digits.parse().unwrap_or(usize::MAX));
            self.eat(b'L');
            self.skip_ws();
            if !self.eat(b',') {
                self.skip_ws();
                self.expect(b')')?;
                return Some(dims);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(descr: &str, fortran: bool, shape: &str, body: &[u8]) -> Vec<u8> {
        let header = format!(
            "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}\n",
            if fortran { "True" } else { "False" }
        );
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn write_then_read_round_trips() {
        for shape in [vec![], vec![3], vec![2, 3], vec![1, 1, 2, 2]] {
            let n: usize = shape.iter().product();
            let data: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 1.0).collect();
            let mut bytes = Vec::new();
            write_f32(&mut bytes, &shape, &data).unwrap();
            let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
            assert_eq!((10 + header_len) % 64, 0, "data is 64-byte aligned");
            let back = parse(&bytes).unwrap();
            assert_eq!(back.shape, shape);
            assert_eq!(back.data, data);
            assert_eq!(back.converted_from, None);
        }
    }

    /// A header of tens of kilobytes (a hand-made one) is quoted by its start in errors.
    #[test]
    fn long_headers_are_quoted_short() {
        let long = "x".repeat(20_000);
        for descr in [format!("<f4', 'junk': '{long}"), format!("{long}f4")] {
            let e = parse(&npy(&descr, false, "(2,)", &[0; 8])).unwrap_err();
            assert!(e.0.len() < 1_000, "{} bytes", e.0.len());
            assert!(e.0.contains("bytes in all)"), "{}", e.0);
        }
    }

    #[test]
    fn float64_and_big_endian_are_converted() {
        let body: Vec<u8> = [1.5f64, -2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let a = parse(&npy("<f8", false, "(2,)", &body)).unwrap();
        assert_eq!(
            (a.shape, a.data, a.converted_from.as_deref()),
            (vec![2], vec![1.5, -2.0], Some("float64"))
        );
        let body: Vec<u8> = [3.25f32].iter().flat_map(|v| v.to_be_bytes()).collect();
        let a = parse(&npy(">f4", false, "(1, 1)", &body)).unwrap();
        assert_eq!(
            (a.data, a.converted_from.as_deref()),
            (vec![3.25], Some("big-endian"))
        );
        let body: Vec<u8> = [1.0f64, 2.0].iter().flat_map(|v| v.to_be_bytes()).collect();
        let a = parse(&npy(">f8", true, "(2, 1)", &body)).unwrap();
        assert_eq!(
            a.converted_from.as_deref(),
            Some("big-endian float64 in Fortran order")
        );
    }

    #[test]
    fn refusals_name_the_problem() {
        let cases: [(Vec<u8>, &str); 14] = [
            (b"\x93NUMPY".to_vec(), "truncated .npy header"),
            (npy("<f3", false, "(1,)", &[0; 3]), "dtype 'f3' ('<f3')"),
            (npy("<f2", false, "(1,)", &[0; 2]), "dtype float16"),
            (
                npy("<f4", false, "(2,)", &[0; 12]),
                "should be 8 bytes, and the file holds more",
            ),
            (
                npy("<f4", false, "(99999999999999999999999, 2)", &[0; 4]),
                "shape (99999999999999999999999, 2) is too large",
            ),
            (npy("\u{e9}4", false, "(1,)", &[0; 4]), "dtype '\u{e9}4'"),
            (npy("<i99999999999999999", false, "(1,)", &[0; 4]), "dtype"),
            (
                b"\x93NUMPY\x02\x00\x10\x00\x00".to_vec(),
                "truncated .npy header",
            ),
            (npy("<i8", false, "(1,)", &[0; 8]), "dtype int64 ('<i8')"),
            (npy("|u1", false, "(1,)", &[0; 1]), "dtype uint8"),
            (
                npy("<f4", false, "(2, 2)", &[0; 12]),
                "should be 16 bytes, the file has 12",
            ),
            (
                b"PK\x03\x04 a zip file, not npy".to_vec(),
                "not a .npy file",
            ),
            (npy("<f4", false, "[2]", &[0; 8]), "shape is not a tuple"),
            (npy("<f4", false, "(-1, 2)", &[0; 8]), "whole numbers ≥ 0"),
        ];
        for (bytes, expect) in cases {
            let e = parse(&bytes).unwrap_err().to_string();
            assert!(e.contains(expect), "expected {expect:?} in {e:?}");
        }
    }

    /// A Fortran-order array (first index fastest) is read into C order.
    #[test]
    fn the_length_worth_reading_comes_from_the_header() {
        let file = npy("<f4", false, "(2, 3)", &[0; 24]);
        let data_start = file.len() - 24;
        // The header incomplete: read on.
        assert_eq!(bytes_worth_reading(&file[..5]), Worth::ReadOn);
        assert_eq!(bytes_worth_reading(&file[..data_start - 1]), Worth::ReadOn);
        // Once it is whole: the file's length, whatever follows.
        let length = Worth::Length(file.len() as u64);
        assert_eq!(bytes_worth_reading(&file[..data_start]), length);
        let mut longer = file.clone();
        longer.extend([0; 100]);
        assert_eq!(bytes_worth_reading(&longer), length);
        // Not a .npy, or a header too long to be one: stop, for `parse` to refuse it.
        assert_eq!(bytes_worth_reading(b"not a npy file at all"), Worth::Stop);
        let mut huge = file[..12].to_vec();
        huge[6] = 2;
        huge[8..12].copy_from_slice(&(1u32 << 30).to_le_bytes());
        assert_eq!(bytes_worth_reading(&huge), Worth::Stop);
    }

    #[test]
    fn fortran_order_is_read_into_c_order() {
        // [[0, 1, 2], [3, 4, 5]] in Fortran order: 0, 3, 1, 4, 2, 5.
        let data: Vec<u8> = [0.0f32, 3.0, 1.0, 4.0, 2.0, 5.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let a = parse(&npy("<f4", true, "(2, 3)", &data)).unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(a.data, vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(a.converted_from.as_deref(), Some("Fortran order"));
        // Rank 3: element (i, j, k) at i + 2 j + 4 k.
        let shape = [2, 2, 2];
        let fortran: Vec<f32> = (0..8)
            .map(|f| {
                let (i, j, k) = (f % 2, f / 2 % 2, f / 4);
                (i * 4 + j * 2 + k) as f32
            })
            .collect();
        assert_eq!(
            fortran_to_c(&fortran, &shape),
            (0..8).map(|x| x as f32).collect::<Vec<_>>()
        );
    }
}
