//! The schema rules: which types a log may have, when a stored or a decoded schema is the
//! log's, when input may go into it, and decoding the schema bytes a manifest records.

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;

use arrow_ipc::convert::try_schema_from_ipc_buffer;
use arrow_schema::{DataType, Field, Fields, SchemaRef};

use super::corrupt;
use crate::codec::CodecError;

pub(super) fn has_dictionary(t: &DataType) -> bool {
    match t {
        DataType::Dictionary(..) => true,
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::ListView(f)
        | DataType::LargeListView(f)
        | DataType::FixedSizeList(f, _)
        | DataType::Map(f, _) => has_dictionary(f.data_type()),
        DataType::Struct(fs) => fs.iter().any(|f| has_dictionary(f.data_type())),
        DataType::Union(fs, _) => fs.iter().any(|(_, f)| has_dictionary(f.data_type())),
        DataType::RunEndEncoded(a, b) => {
            has_dictionary(a.data_type()) || has_dictionary(b.data_type())
        }
        _ => false,
    }
}

/// `"name": Type` for messages (`?` marks a nullable field).
fn one(f: &Field) -> String {
    let null = if f.is_nullable() { "?" } else { "" };
    format!("{:?}: {}{null}", f.name(), f.data_type())
}

/// Each field as [`one`] says.
fn listed(fields: &Fields) -> String {
    let all: alloc::vec::Vec<String> = fields.iter().map(|f| one(f)).collect();
    all.join(", ")
}

/// Field `i` differs: both named, in full where the short form cannot tell them apart
/// (metadata, say).
fn field_diff(i: usize, want: &Field, got: &Field) -> String {
    let (w, g) = (one(want), one(got));
    if w == g {
        format!("field {i} is {got:?}, expected {want:?}")
    } else {
        format!("field {i} is {g}, expected {w}")
    }
}

/// Different numbers of fields, both lists named.
fn count_diff(want: &Fields, got: &Fields) -> String {
    format!(
        "{} fields ({}), expected {} ({})",
        got.len(),
        listed(got),
        want.len(),
        listed(want)
    )
}

/// Names the first difference between the log's fields and `got`, if any.
pub(super) fn fields_diff(want: &Fields, got: &Fields) -> Option<String> {
    if want == got {
        return None;
    }
    if want.len() != got.len() {
        return Some(count_diff(want, got));
    }
    let diff = want
        .iter()
        .zip(got.iter())
        .enumerate()
        .find(|(_, (w, g))| w != g);
    Some(match diff {
        Some((i, (w, g))) => field_diff(i, w, g),
        None => "fields differ".into(),
    })
}

/// Names the first field of `got` the log cannot take, if any: input may be stricter than the
/// log (a non-nullable field into a nullable one, as apache-arrow JS declares columns without
/// nulls), never looser. Names, types and order must match.
pub(super) fn input_fields_diff(want: &Fields, got: &Fields) -> Option<String> {
    if want.len() != got.len() {
        return Some(count_diff(want, got));
    }
    let (i, (w, g)) = want
        .iter()
        .zip(got.iter())
        .enumerate()
        .find(|(_, (w, g))| !w.contains(g))?;
    Some(field_diff(i, w, g))
}

/// Decodes schema bytes recorded in a manifest (an encoded IPC schema message).
pub fn decode_schema(stored: &[u8]) -> Result<SchemaRef, CodecError> {
    try_schema_from_ipc_buffer(stored)
        .map(Arc::new)
        .map_err(|e| corrupt(format!("schema bytes: {e}")))
}

#[cfg(test)]
mod tests {
    use alloc::boxed::Box;
    use alloc::sync::Arc;
    use alloc::vec;

    use arrow_array::RecordBatch;
    use arrow_schema::{DataType, Field, Schema};

    use crate::arrow::test_util::{codec, header, schema};
    use crate::arrow::ArrowCodec;
    use crate::codec::{Codec, CodecError, EntryKind, GenerationHeader};

    #[test]
    fn schema_mismatch_and_dictionaries() {
        let c = codec();
        let other = Arc::new(Schema::new(vec![Field::new("id", DataType::Int32, false)]));
        let b = RecordBatch::try_new(
            other.clone(),
            vec![Arc::new(arrow_array::Int32Array::from(vec![1, 2]))],
        )
        .unwrap();
        match c.encode_batch(&b) {
            Err(CodecError::SchemaMismatch(why)) => assert!(why.contains("fields"), "{why}"),
            got => panic!("{got:?}"),
        }
        let oc = ArrowCodec::new(other).unwrap();
        let rec = oc.encode_batch(&b).unwrap();
        let entry = oc
            .encode_entry(&header(EntryKind::Data), &[rec])
            .unwrap()
            .to_bytes();
        assert!(matches!(
            c.decode_entry(entry),
            Err(CodecError::SchemaMismatch(_))
        ));
        let generation = oc.encode_generation(&GenerationHeader { epoch: 1, id: 0 }, &[]);
        let got = c.decode_generation(generation.unwrap());
        assert!(matches!(got, Err(CodecError::SchemaMismatch(_))));

        let dict = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
        let nested = DataType::List(Arc::new(Field::new("item", dict.clone(), true)));
        for t in [dict, nested] {
            let s = Arc::new(Schema::new(vec![Field::new("d", t, true)]));
            match ArrowCodec::new(s) {
                Err(CodecError::Encode(why)) => assert!(why.contains("dictionary"), "{why}"),
                got => panic!("{got:?}"),
            }
        }
    }

    #[test]
    fn schema_bytes_and_matching() {
        let c = codec();
        let mut md = arrow_schema::Metadata::new();
        md.insert("tidewal.kind", "data");
        md.insert("owner", "me");
        let with_md = Arc::new(Schema::new_with_metadata(schema().fields().clone(), md));
        let c2 = ArrowCodec::new(with_md).unwrap();
        assert_eq!(c2.schema_ref().metadata().len(), 1);
        assert!(c2.schema_ref().metadata().contains_key("owner"));
        assert_eq!(c.schema(), ArrowCodec::new(schema()).unwrap().schema());
        assert_eq!(c.name(), "arrow-ipc");
        assert_eq!(c.schema_diff(&c.schema()), None);
        assert_eq!(c2.schema_diff(&c.schema()), None);
        let other = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]));
        assert!(c
            .schema_diff(&ArrowCodec::new(other).unwrap().schema())
            .is_some());
        let s = c.schema();
        for bad in [&b""[..], b"garbage", &s[..s.len() / 2], &s[8..]] {
            assert!(c.schema_diff(bad).is_some());
        }
    }
}
