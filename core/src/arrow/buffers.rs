//! Checks a record batch message's buffer lengths against the log schema before arrow-ipc
//! reads it. arrow's validation *panics* (instead of failing) on a fixed-width buffer whose
//! length is not a multiple of its element width, and its union reader slices unchecked; bytes
//! from a caller or a crafted object must get an error instead. The walk mirrors the order in
//! which arrow-ipc consumes field nodes and buffers (IPC format, metadata V5).

use alloc::format;
use alloc::string::String;

use arrow_ipc::RecordBatch as BatchHeader;
use arrow_schema::{DataType, Field, UnionMode};

/// Where the walk is in the message's nodes, buffers and variadic counts.
struct Cursor<'a> {
    header: BatchHeader<'a>,
    node: usize,
    buffer: usize,
    variadic: usize,
}

impl Cursor<'_> {
    /// The next field node's length.
    fn node(&mut self, field: &Field) -> Result<u64, String> {
        let nodes = self.header.nodes().ok_or("no field nodes")?;
        if self.node >= nodes.len() {
            return Err(format!("no field node for {:?}", field.name()));
        }
        let node = nodes.get(self.node);
        self.node += 1;
        u64::try_from(node.length()).map_err(|_| String::from("negative field node length"))
    }

    /// Consumes one buffer; `width` is its element size if fixed-width.
    fn buffer(&mut self, field: &Field, width: Option<usize>) -> Result<u64, String> {
        let buffers = self.header.buffers().ok_or("no buffers")?;
        if self.buffer >= buffers.len() {
            return Err(format!("missing a buffer of {:?}", field.name()));
        }
        let b = buffers.get(self.buffer);
        self.buffer += 1;
        let len = u64::try_from(b.length()).map_err(|_| String::from("negative buffer length"))?;
        match width {
            Some(w) if !len.is_multiple_of(w as u64) => Err(format!(
                "a buffer of {:?} is {len} bytes, not a multiple of {w}",
                field.name()
            )),
            _ => Ok(len),
        }
    }

    fn variadic_count(&mut self) -> Result<u64, String> {
        let counts = self
            .header
            .variadicBufferCounts()
            .ok_or("no variadic counts")?;
        if self.variadic >= counts.len() {
            return Err("missing a variadic buffer count".into());
        }
        let n = counts.get(self.variadic);
        self.variadic += 1;
        u64::try_from(n).map_err(|_| String::from("negative variadic buffer count"))
    }

    fn field(&mut self, field: &Field) -> Result<(), String> {
        use DataType::*;
        let t = field.data_type();
        let len = self.node(field)?;
        match t {
            Null => {}
            Boolean => {
                self.buffer(field, None)?;
                self.buffer(field, None)?;
            }
            Utf8 | Binary | LargeUtf8 | LargeBinary => {
                let w = if matches!(t, Utf8 | Binary) { 4 } else { 8 };
                self.buffer(field, None)?;
                self.buffer(field, Some(w))?;
                self.buffer(field, None)?;
            }
            Utf8View | BinaryView => {
                self.buffer(field, None)?;
                self.buffer(field, Some(16))?;
                for _ in 0..self.variadic_count()? {
                    self.buffer(field, None)?;
                }
            }
            FixedSizeBinary(_) => {
                self.buffer(field, None)?;
                self.buffer(field, None)?;
            }
            List(child) | Map(child, _) | LargeList(child) => {
                let w = if matches!(t, LargeList(_)) { 8 } else { 4 };
                self.buffer(field, None)?;
                self.buffer(field, Some(w))?;
                self.field(child)?;
            }
            ListView(child) | LargeListView(child) => {
                let w = if matches!(t, ListView(_)) { 4 } else { 8 };
                self.buffer(field, None)?;
                self.buffer(field, Some(w))?;
                self.buffer(field, Some(w))?;
                self.field(child)?;
            }
            FixedSizeList(child, _) => {
                self.buffer(field, None)?;
                self.field(child)?;
            }
            Struct(children) => {
                self.buffer(field, None)?;
                for c in children {
                    self.field(c)?;
                }
            }
            RunEndEncoded(run_ends, values) => {
                self.field(run_ends)?;
                self.field(values)?;
            }
            Union(children, mode) => {
                // arrow slices type ids (1 byte each) and dense offsets (4 bytes) unchecked.
                let short = || format!("a buffer of union {:?} is too short", field.name());
                if self.buffer(field, None)? < len {
                    return Err(short());
                }
                if *mode == UnionMode::Dense && self.buffer(field, Some(4))? < len * 4 {
                    return Err(short());
                }
                for (_, c) in children.iter() {
                    self.field(c)?;
                }
            }
            other => {
                self.buffer(field, None)?;
                self.buffer(field, other.primitive_width())?;
            }
        }
        Ok(())
    }
}

/// Fails (never panics) if a buffer of `header` has a length arrow would panic on.
pub(crate) fn check_buffer_lengths(
    fields: &arrow_schema::Fields,
    header: BatchHeader<'_>,
) -> Result<(), String> {
    let mut cursor = Cursor {
        header,
        node: 0,
        buffer: 0,
        variadic: 0,
    };
    for f in fields {
        cursor.field(f)?;
    }
    Ok(())
}
