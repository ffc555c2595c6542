//! `cnnc export`'s writer: the model goes straight to its file, each parameter's bytes drawn
//! (or copied from given weights) a chunk at a time as the file is written, so the weights
//! are never held in memory, whatever their size, and drawing overlaps writing.
//!
//! The bytes are exactly prost's encoding of the model [`super::export`] builds: the message
//! is cut where each parameter's `raw_data` goes, the pieces around it are encoded by prost,
//! and the length prefixes in between are computed from the parameters' known sizes (prost
//! writes fields in tag order, which the cuts follow; a test compares the bytes).
//! Above the external-data threshold the parameters stream into `<model>.data` instead.

use super::lower::{lower, ExportError, ExportOptions, ParamSlot, Written, PROTOBUF_LIMIT};
use super::proto::{data_location, GraphProto, ModelProto, StringStringEntryProto, TensorProto};
use super::weights::{draw_into, parameter_specs, Init, ParamSpec, Weights};
use crate::fsutil;
use crate::shape::CheckedModel;
use crate::source::SourceMap;
use prost::encoding::{encode_key, encode_varint, encoded_len_varint, key_len, WireType};
use prost::Message;
use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex};

/// Where the parameters' values come from.
#[derive(Clone, Copy, Debug)]
pub enum ParamValues<'a> {
    /// Given tensors, which must match the model's parameters exactly.
    Given(&'a Weights),
    /// Drawn from the seed as [`super::initialize`] would draw them.
    Drawn { init: Init, seed: u64 },
}

/// Values drawn per job: 256 KiB of floats, small enough to stay in cache between drawing and
/// writing.
const CHUNK: usize = 1 << 16;

/// Exports `model` to `path` (atomically), the parameters' values from `values`; above
/// `options.external_data_threshold` bytes of float initializers they go to `<path>.data`.
pub fn export_to_file(
    model: &CheckedModel,
    sources: &SourceMap,
    values: ParamValues<'_>,
    path: &Path,
    options: &ExportOptions,
) -> Result<Written, ExportError> {
    // Through links: the model and its data file go beside the file the link names.
    let resolved = fsutil::resolve_output(path);
    let path = resolved.as_path();
    let specs = parameter_specs(model);
    if let ParamValues::Given(w) = values {
        w.check(&specs).map_err(ExportError::Weights)?;
    }
    let (mut proto, slots) = lower(model, sources, options)?;
    let by_name: HashMap<&str, &ParamSpec> = specs.iter().map(|s| (s.name.as_str(), s)).collect();
    let raw = |slot: &ParamSlot| -> Raw<'_> {
        match values {
            ParamValues::Given(w) => Raw::Given(&w.get(&slot.name).expect("checked").data),
            ParamValues::Drawn { .. } => Raw::Drawn(by_name[slot.name.as_str()]),
        }
    };
    let (init, seed) = match values {
        ParamValues::Drawn { init, seed } => (init, seed),
        ParamValues::Given(_) => (Init::Default, 0),
    };
    let io = |p: &Path, e: io::Error| ExportError::Io {
        path: p.to_path_buf(),
        message: e.to_string(),
    };
    let graph = proto.graph.as_mut().expect("lower builds a graph");
    let mut raws: Vec<Option<Raw>> = vec![None; graph.initializer.len()];
    for slot in &slots {
        raws[slot.initializer] = Some(raw(slot));
    }
    let shape_data = super::lower::shape_data(graph);
    let external = |t: &TensorProto| super::lower::goes_external(t, &shape_data);
    let float_bytes: u64 = graph
        .initializer
        .iter()
        .zip(&raws)
        .filter(|(t, _)| external(t))
        .map(|(t, r)| r.as_ref().map_or(t.raw_data.len() as u64, Raw::bytes))
        .sum();

    if float_bytes > options.external_data_threshold {
        // The float initializers go to `<file>.data`, 64-byte aligned; the model keeps
        // their location, offset and length (int64 constants and Resize's scales stay
        // inline: shape inference reads them, see `lower::shape_data`).
        if fsutil::is_special(path) {
            return Err(io(
                path,
                io::Error::other(format!(
                    "the model has {float_bytes} bytes of weights, which go to an external data \
                     file beside the model, and {} is not a regular file; write to a file",
                    path.display()
                )),
            ));
        }
        let (location, data_path) = super::lower::external_data_file(path);
        let mut data = Pieces::default();
        for (t, r) in graph.initializer.iter_mut().zip(raws) {
            if !external(t) {
                debug_assert!(r.is_none(), "{} is a parameter, not shape data", t.name);
                continue;
            }
            data.bytes(vec![0; (data.len.next_multiple_of(64) - data.len) as usize]);
            let offset = data.len;
            match r {
                Some(r) => data.raw(r),
                None => data.bytes(std::mem::take(&mut t.raw_data)),
            }
            t.data_location = data_location::EXTERNAL;
            t.external_data = vec![
                StringStringEntryProto::new("location", &location),
                StringStringEntryProto::new("offset", offset.to_string()),
                StringStringEntryProto::new("length", (data.len - offset).to_string()),
            ];
        }
        let data_len = data.len;
        // Everything that can be checked is checked before the data file is written, so a
        // refused export leaves an older model and its data file as they were.
        let bytes = proto.encode_to_vec();
        if bytes.len() as u64 > PROTOBUF_LIMIT {
            return Err(ExportError::TooLarge {
                bytes: bytes.len() as u64,
            });
        }
        super::lower::check_data_file_free(path, data_len)?;
        fsutil::check_space(&data_path, data_len + bytes.len() as u64)
            .map_err(|e| io(&data_path, e))?;
        // Both files are staged, then put in place together: a Ctrl-C between the two
        // must not leave the old model beside the new data.
        let data_file = data
            .stage(&data_path, init, seed)
            .map_err(|e| io(&data_path, e))?;
        let model_file =
            fsutil::stage_with(path, |o| o.write_all(&bytes)).map_err(|e| io(path, e))?;
        fsutil::commit([data_file, model_file]).map_err(|e| io(path, e))?;
        return Ok(Written {
            model_bytes: bytes.len() as u64,
            data: Some((data_path, data_len)),
        });
    }

    let pieces = inline_pieces(proto, raws);
    if pieces.len > PROTOBUF_LIMIT {
        return Err(ExportError::TooLarge { bytes: pieces.len });
    }
    let len = pieces.len;
    fsutil::check_space(path, len).map_err(|e| io(path, e))?;
    pieces.write(path, init, seed).map_err(|e| io(path, e))?;
    Ok(Written {
        model_bytes: len,
        data: None,
    })
}

/// The model as pieces whose concatenation is prost's encoding of it with every parameter's
/// `raw_data` filled in.
fn inline_pieces<'a>(mut proto: ModelProto, raws: Vec<Option<Raw<'a>>>) -> Pieces<'a> {
    // prost writes a message's fields in the order of their tags. ModelProto: ir_version (1),
    // producer_name, producer_version, domain, model_version, doc_string (2–6), graph (7),
    // opset_import (8), metadata_props (14).
    let mut graph = proto.graph.take().expect("lower builds a graph");
    let model_tail = ModelProto {
        opset_import: std::mem::take(&mut proto.opset_import),
        metadata_props: std::mem::take(&mut proto.metadata_props),
        ..Default::default()
    };
    // GraphProto: node (1), name (2), initializer (5), doc_string (10), input (11),
    // output (12), value_info (13).
    let initializers = std::mem::take(&mut graph.initializer);
    let graph_head = GraphProto {
        node: std::mem::take(&mut graph.node),
        name: std::mem::take(&mut graph.name),
        ..Default::default()
    };
    let graph_tail = graph;

    // TensorProto: dims (1), data_type (2), float_data (4), int64_data (7), name (8),
    // raw_data (9), doc_string (12), external_data (13), data_location (14). A parameter's
    // tensor is its head, field 9 with the raw bytes (left out when empty, as prost leaves
    // out an empty bytes field), then its tail.
    let tensors: Vec<(Vec<u8>, Option<Raw>, Vec<u8>)> = initializers
        .into_iter()
        .zip(raws)
        .map(|(mut t, r)| match r {
            None => (t.encode_to_vec(), None, Vec::new()),
            Some(r) => {
                let tail = TensorProto {
                    doc_string: std::mem::take(&mut t.doc_string),
                    external_data: std::mem::take(&mut t.external_data),
                    data_location: std::mem::take(&mut t.data_location),
                    ..Default::default()
                };
                let r = Some(r).filter(|r| r.bytes() > 0);
                (t.encode_to_vec(), r, tail.encode_to_vec())
            }
        })
        .collect();
    let tensor_len = |(head, raw, tail): &(Vec<u8>, Option<Raw>, Vec<u8>)| -> u64 {
        (head.len() + tail.len()) as u64 + raw.as_ref().map_or(0, |r| field_len(9, r.bytes()))
    };
    let graph_len = graph_head.encoded_len() as u64
        + tensors
            .iter()
            .map(|t| field_len(5, tensor_len(t)))
            .sum::<u64>()
        + graph_tail.encoded_len() as u64;

    let mut p = Pieces::default();
    p.bytes(proto.encode_to_vec());
    p.bytes(field_header(7, graph_len));
    p.bytes(graph_head.encode_to_vec());
    for t in tensors {
        p.bytes(field_header(5, tensor_len(&t)));
        let (head, raw, tail) = t;
        p.bytes(head);
        if let Some(raw) = raw {
            p.bytes(field_header(9, raw.bytes()));
            p.raw(raw);
        }
        p.bytes(tail);
    }
    p.bytes(graph_tail.encode_to_vec());
    p.bytes(model_tail.encode_to_vec());
    p
}

/// Key and length of a length-delimited field.
fn field_header(tag: u32, len: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(16);
    encode_key(tag, WireType::LengthDelimited, &mut b);
    encode_varint(len, &mut b);
    b
}

/// The encoded size of a length-delimited field of `len` bytes.
fn field_len(tag: u32, len: u64) -> u64 {
    (key_len(tag) + encoded_len_varint(len)) as u64 + len
}

/// One parameter's values.
#[derive(Clone, Copy, Debug)]
enum Raw<'a> {
    Given(&'a [f32]),
    Drawn(&'a ParamSpec),
}

impl Raw<'_> {
    /// Its size as float32. A checked model's tensors have at most 2^38 elements
    /// (`shape::rules::MAX_CONSTANT_ELEMENTS`), so this is exact; it saturates all the same,
    /// since a wrapped size would cut the file's length prefixes short.
    fn bytes(&self) -> u64 {
        let elements = match self {
            Raw::Given(d) => d.len(),
            Raw::Drawn(s) => s.elements(),
        };
        u64::try_from(elements)
            .unwrap_or(u64::MAX)
            .saturating_mul(4)
    }
}

enum Piece<'a> {
    Bytes(Vec<u8>),
    Given(&'a [f32]),
    /// The next `n` values of the drawn stream.
    Drawn(usize),
}

/// A file's contents as a sequence of pieces.
#[derive(Default)]
struct Pieces<'a> {
    items: Vec<Piece<'a>>,
    /// The drawn parameters, in order: their values, concatenated, are the drawn stream.
    drawn: Vec<&'a ParamSpec>,
    len: u64,
}

impl<'a> Pieces<'a> {
    fn bytes(&mut self, b: Vec<u8>) {
        self.len += b.len() as u64;
        match self.items.last_mut() {
            Some(Piece::Bytes(last)) => last.extend(b),
            _ => self.items.push(Piece::Bytes(b)),
        }
    }

    fn raw(&mut self, r: Raw<'a>) {
        self.len += r.bytes();
        match r {
            Raw::Given(d) => self.items.push(Piece::Given(d)),
            Raw::Drawn(spec) => {
                self.drawn.push(spec);
                self.items.push(Piece::Drawn(spec.elements()));
            }
        }
    }

    /// Writes the pieces to `path` atomically; the drawn stream is drawn by worker threads,
    /// a chunk each, while this thread writes the chunks in order.
    fn write(self, path: &Path, init: Init, seed: u64) -> io::Result<()> {
        fsutil::commit([self.stage(path, init, seed)?])
    }

    /// [`Pieces::write`] into a staged file, put in place by [`fsutil::commit`].
    fn stage(self, path: &Path, init: Init, seed: u64) -> io::Result<fsutil::Staged> {
        let Pieces { items, drawn, .. } = self;
        let draw = Drawing::new(drawn, init, seed);
        fsutil::stage_with(path, |out| {
            std::thread::scope(|scope| {
                let mut stream = draw.start(scope);
                for item in &items {
                    match item {
                        Piece::Bytes(b) => out.write_all(b)?,
                        Piece::Given(d) => write_f32s(out, d)?,
                        Piece::Drawn(n) => stream.write(out, *n)?,
                    }
                }
                Ok(())
                // `stream` is dropped here, on success or error, which stops the workers.
            })
        })
    }
}

/// Little-endian bytes of `data`.
fn write_f32s(out: &mut impl Write, data: &[f32]) -> io::Result<()> {
    if cfg!(target_endian = "little") {
        out.write_all(bytemuck::cast_slice(data))
    } else {
        for chunk in data.chunks(4096) {
            out.write_all(&super::proto::f32_le_bytes(chunk))?;
        }
        Ok(())
    }
}

/// The drawn stream cut into jobs of [`CHUNK`] values.
struct Drawing<'a> {
    specs: Vec<&'a ParamSpec>,
    /// Where each parameter starts in the stream.
    starts: Vec<usize>,
    total: usize,
    init: Init,
    seed: u64,
}

impl<'a> Drawing<'a> {
    fn new(specs: Vec<&'a ParamSpec>, init: Init, seed: u64) -> Drawing<'a> {
        let mut starts = Vec::with_capacity(specs.len());
        let mut total = 0;
        for s in &specs {
            starts.push(total);
            // Exact for a checked model (its parameters' total is far below 2^62).
            total = usize::saturating_add(total, s.elements());
        }
        Drawing {
            specs,
            starts,
            total,
            init,
            seed,
        }
    }

    fn jobs(&self) -> usize {
        self.total.div_ceil(CHUNK)
    }

    /// Draws job `j`'s values into `buf`.
    fn draw(&self, j: usize, buf: &mut Vec<f32>) {
        let (lo, hi) = (j * CHUNK, ((j + 1) * CHUNK).min(self.total));
        buf.clear();
        buf.resize(hi - lo, 0.0);
        let mut k = self.starts.partition_point(|&s| s <= lo) - 1;
        let mut at = lo;
        while at < hi {
            let (start, spec) = (self.starts[k], self.specs[k]);
            let end = (start + spec.elements()).min(hi);
            draw_into(
                spec,
                self.init,
                self.seed,
                at - start,
                &mut buf[at - lo..end - lo],
            );
            at = end;
            k += 1;
        }
    }

    /// Starts the workers; the returned stream hands their chunks out in order.
    fn start<'scope, 'env>(
        &'env self,
        scope: &'scope std::thread::Scope<'scope, 'env>,
    ) -> DrawnStream {
        let jobs = self.jobs();
        let workers = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 8)
            .min(jobs);
        // A pool of buffers bounds the memory in use: a worker takes one before it claims a
        // job, so the job the writer waits for always has a buffer (no deadlock).
        let (pool_tx, pool_rx) = mpsc::channel::<Vec<f32>>();
        for _ in 0..2 * workers + 1 {
            pool_tx.send(Vec::new()).expect("the receiver is alive");
        }
        let pool_rx = std::sync::Arc::new(Mutex::new(pool_rx));
        let (done_tx, done_rx) = mpsc::channel::<(usize, Vec<f32>)>();
        let next = std::sync::Arc::new(AtomicUsize::new(0));
        for _ in 0..workers {
            let (pool_rx, done_tx, next) = (pool_rx.clone(), done_tx.clone(), next.clone());
            scope.spawn(move || loop {
                let Ok(mut buf) = pool_rx.lock().expect("no panics").recv() else {
                    return;
                };
                let j = next.fetch_add(1, Ordering::Relaxed);
                if j >= jobs {
                    return;
                }
                self.draw(j, &mut buf);
                if done_tx.send((j, buf)).is_err() {
                    return;
                }
            });
        }
        DrawnStream {
            done: done_rx,
            pool: pool_tx,
            waiting: BTreeMap::new(),
            next_job: 0,
            current: Vec::new(),
            at: 0,
        }
    }
}

/// The writer's end of the drawing: chunks in job order.
struct DrawnStream {
    done: mpsc::Receiver<(usize, Vec<f32>)>,
    pool: mpsc::Sender<Vec<f32>>,
    /// Chunks that arrived before their turn.
    waiting: BTreeMap<usize, Vec<f32>>,
    next_job: usize,
    current: Vec<f32>,
    at: usize,
}

impl DrawnStream {
    /// Writes the stream's next `n` values.
    fn write(&mut self, out: &mut impl Write, mut n: usize) -> io::Result<()> {
        while n > 0 {
            if self.at == self.current.len() {
                let used = std::mem::take(&mut self.current);
                if used.capacity() > 0 {
                    // The workers may all have finished; then the buffer is not needed.
                    let _ = self.pool.send(used);
                }
                self.current = self.next_chunk()?;
                self.at = 0;
            }
            let m = n.min(self.current.len() - self.at);
            write_f32s(out, &self.current[self.at..self.at + m])?;
            self.at += m;
            n -= m;
        }
        Ok(())
    }

    fn next_chunk(&mut self) -> io::Result<Vec<f32>> {
        let j = self.next_job;
        self.next_job += 1;
        loop {
            if let Some(buf) = self.waiting.remove(&j) {
                return Ok(buf);
            }
            match self.done.recv() {
                Ok((k, buf)) => {
                    self.waiting.insert(k, buf);
                }
                Err(_) => return Err(io::Error::other("the weight drawing threads stopped")),
            }
        }
    }
}
