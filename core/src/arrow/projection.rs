//! Column projection: a read that names columns decodes only those (arrow's record batch
//! decoder skips the other columns' buffers; their bytes are still fetched, since a WAL slot
//! or a generation is one object).

use alloc::format;
use alloc::string::ToString;
use alloc::vec::Vec;
use std::collections::HashMap;

use arrow_array::RecordBatch;
use arrow_ipc::reader::read_record_batch;
use arrow_ipc::writer::StreamWriter;
use arrow_schema::SchemaRef;

use super::framing::batch_message;
use super::{buffers, corrupt, encode_err, ArrowCodec};
use crate::codec::{CodecError, Record};
use crate::host_error::Error;

/// The columns a read decodes: indices into the log schema, in the order they were named,
/// and the schema of the batches it yields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Projection {
    indices: Vec<usize>,
    schema: SchemaRef,
}

impl Projection {
    /// The schema of projected batches.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// The columns' indices in the log schema.
    pub fn indices(&self) -> &[usize] {
        &self.indices
    }
}

impl ArrowCodec {
    /// The projection onto `names` (in that order). A name the log does not have is an
    /// [`Error::UnknownColumn`] listing the log's columns; no names, or a name given twice, is
    /// [`Error::Invalid`].
    pub fn projection<S: AsRef<str>>(&self, names: &[S]) -> Result<Projection, Error> {
        if names.is_empty() {
            return Err(Error::Invalid("a projection names no column".into()));
        }
        let mut indices = Vec::with_capacity(names.len());
        for name in names {
            let name = name.as_ref();
            let Some(index) = self.schema.fields().iter().position(|f| f.name() == name) else {
                return Err(Error::UnknownColumn {
                    column: name.to_string(),
                    columns: self
                        .schema
                        .fields()
                        .iter()
                        .map(|f| f.name().clone())
                        .collect(),
                });
            };
            if indices.contains(&index) {
                return Err(Error::Invalid(format!("column {name:?} is named twice")));
            }
            indices.push(index);
        }
        let schema = self
            .schema
            .project(&indices)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        Ok(Projection {
            indices,
            schema: schema.into(),
        })
    }

    /// Decodes a record into a batch of the log schema, or of `projection`'s columns only
    /// (the others are skipped, not decoded), validating the buffers of the whole record.
    pub fn decode_projected(
        &self,
        record: &Record,
        projection: Option<&Projection>,
    ) -> Result<RecordBatch, CodecError> {
        // A record straight from encode_batch shares its batch's buffers in pieces; arrow's
        // reader wants one buffer.
        let buf = record.payload.to_bytes();
        let (m, rb, rows) = batch_message(&buf)?;
        buffers::check_buffer_lengths(self.schema.fields(), rb).map_err(corrupt)?;
        // Zero-copy when the body is aligned; arrow copies it otherwise.
        let body = buf.slice(m.body.clone()).into();
        let batch = read_record_batch(
            &body,
            rb,
            self.schema.clone(),
            &HashMap::new(),
            projection.map(|p| &p.indices[..]),
            &m.msg.version(),
        )
        .map_err(|e| corrupt(format!("bad record batch: {e}")))?;
        if rows != record.rows {
            return Err(corrupt("record row count differs from its batch"));
        }
        Ok(batch)
    }

    /// An Arrow IPC stream of `records`: their bytes as they are ([`ArrowCodec::join_stream`]),
    /// or, with a projection, their batches decoded onto its columns and encoded again.
    pub fn join_projected<'a>(
        &self,
        records: impl IntoIterator<Item = &'a Record>,
        projection: Option<&Projection>,
    ) -> Result<Vec<u8>, CodecError> {
        let Some(p) = projection else {
            return Ok(self.join_stream(records));
        };
        let mut w = StreamWriter::try_new(Vec::new(), &p.schema).map_err(encode_err)?;
        for r in records {
            w.write(&self.decode_projected(r, Some(p))?)
                .map_err(encode_err)?;
        }
        w.into_inner().map_err(encode_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;
    use alloc::vec;
    use arrow_ipc::reader::StreamReader;

    use crate::arrow::test_util::{batch, codec};

    #[test]
    fn a_projection_decodes_the_named_columns_in_order() {
        let c = codec();
        let b = batch(7, 3);
        let rec = c.encode_batch(&b).unwrap();
        let p = c.projection(&["name", "id"]).unwrap();
        let got = c.decode_projected(&rec, Some(&p)).unwrap();
        assert_eq!(got, b.project(&[2, 0]).unwrap());
        assert_eq!(got.schema(), p.schema());
        assert_eq!(c.decode_projected(&rec, None).unwrap(), b);
        let stream = c.join_projected([&rec, &rec], Some(&p)).unwrap();
        let read: Vec<RecordBatch> = StreamReader::try_new(std::io::Cursor::new(stream), None)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(read, vec![got.clone(), got]);
    }

    #[test]
    fn unknown_duplicate_and_no_columns_are_typed_errors() {
        let c = codec();
        let e = c.projection(&["id", "nope"]).unwrap_err();
        assert_eq!(
            e,
            Error::UnknownColumn {
                column: "nope".into(),
                columns: ["id", "ts", "name", "vec"].map(String::from).to_vec(),
            }
        );
        assert!(e.to_string().contains("\"nope\"") && e.to_string().contains("id, ts, name, vec"));
        assert!(matches!(
            c.projection(&["id", "id"]),
            Err(Error::Invalid(_))
        ));
        assert!(matches!(c.projection::<&str>(&[]), Err(Error::Invalid(_))));
    }

    #[test]
    fn a_projected_decode_still_refuses_a_corrupt_record() {
        let c = codec();
        let rec = c.encode_batch(&batch(5, 1)).unwrap();
        let p = c.projection(&["id"]).unwrap();
        let short = Record::new(
            rec.payload.to_bytes().slice(..rec.payload.len() - 8),
            rec.rows,
        );
        assert!(matches!(
            c.decode_projected(&short, Some(&p)),
            Err(CodecError::Corrupt(_))
        ));
    }
}
