//! Arrow string columns in, through the Arrow PyCapsule interface: `_fastllm.encode_ordinary_arrow`.
//!
//! Design notes: three ways to read an Arrow column from Python were compared.
//! - `pyo3-arrow` 0.20 (matches pyo3 0.30 / arrow 59): `PyChunkedArray` extracts any
//!   `__arrow_c_stream__` object in one line, but it cannot drop its default features: it brings
//!   arrow-cast (pretty printing, lexical-*), arrow-select, arrow-ord, chrono-tz and comfy-table,
//!   and turns on pyo3's chrono / chrono-tz / indexmap features: 131 crates against 58 with
//!   pyo3 + numpy + arrow-array (`cargo tree`); its stream reader also `unwrap`s the producer's
//!   callbacks, a panic on a malformed stream.
//! - arrow-array's own `ffi` (the C Data Interface structs, import of arrays, well kept by the
//!   Arrow project) plus the capsule protocol by hand: the capsules are three named pointers and
//!   a stream is two callbacks; ~80 lines here, every callback checked. Chosen.
//! - Hand-written FFI structs: the same work as arrow-array's, unreviewed. Rejected.
//!
//! The text is never copied: each worker thread reads its rows' bytes straight out of the Arrow
//! data buffers (offsets, or views for `string_view`) and checks them (bounds and UTF-8, which
//! Arrow promises only for well-formed producers) before encoding. The stream or array capsule
//! is consumed with the GIL held (a producer may run Python code); encoding runs with it released.

use std::ffi::CStr;

use arrow_array::ffi::{from_ffi, from_ffi_and_data_type, FFI_ArrowArray, FFI_ArrowSchema};
use arrow_array::ffi_stream::FFI_ArrowArrayStream;
use arrow_array::{
    make_array, Array, ArrayRef, GenericStringArray, OffsetSizeTrait, StringViewArray, StructArray,
};
use arrow_schema::{DataType, Field};
use numpy::{IntoPyArray, PyArray1};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyCapsuleMethods, PyTuple};

use super::encoding::PyCoreBpe;
use crate::error::{Error, Result};
use crate::flat::{self, Docs};
use crate::vocab::Rank;

const SCHEMA_CAPSULE: &CStr = c"arrow_schema";
const ARRAY_CAPSULE: &CStr = c"arrow_array";
const STREAM_CAPSULE: &CStr = c"arrow_array_stream";

const WHAT_TO_PASS: &str = "pass a string column (pyarrow StringArray, LargeStringArray, \
     StringViewArray or ChunkedArray, a polars Series, or any object with __arrow_c_array__ or \
     __arrow_c_stream__)";

fn type_error(what: impl std::fmt::Display) -> PyErr {
    PyTypeError::new_err(format!(
        "expected an Arrow string column, got {what}; {WHAT_TO_PASS}"
    ))
}

fn arrow_error(what: &str, e: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(format!("could not import the Arrow {what}: {e}"))
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .fully_qualified_name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "an object".into())
}

/// A string column's chunks, with the Arrow type they had.
struct Column {
    chunks: Vec<ArrayRef>,
}

/// The one string column inside `array`: itself, or the only field of a struct (a record batch,
/// as a table or a DuckDB result exports).
fn string_column(array: ArrayRef) -> PyResult<ArrayRef> {
    match array.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Ok(array),
        DataType::Struct(fields) => {
            let Some(strukt) = array.as_any().downcast_ref::<StructArray>() else {
                return Err(type_error("a struct that is not a StructArray"));
            };
            match (fields.len(), strukt.columns().first()) {
                (1, Some(child)) => string_column(child.clone()),
                _ => {
                    let names: Vec<String> = fields
                        .iter()
                        .map(|f| crate::error::py_repr(f.name()))
                        .collect();
                    Err(PyTypeError::new_err(format!(
                        "expected one Arrow string column, got a table with {} columns [{}]; \
                         pass one of them, e.g. table[{}]",
                        names.len(),
                        names.join(", "),
                        names.first().map_or("'text'", String::as_str)
                    )))
                }
            }
        }
        DataType::Dictionary(_, value) if value.is_string() => Err(PyTypeError::new_err(format!(
            "expected an Arrow string column, got a dictionary-encoded one ({}); decode it first, \
             e.g. column.dictionary_decode() in pyarrow or series.cast(pl.String) in polars",
            array.data_type()
        ))),
        other => Err(type_error(format!(
            "a column of type {other}; cast it first if it holds text (e.g. \
             pyarrow.compute.cast(column, pyarrow.large_string())), or"
        ))),
    }
}

/// Reads `__arrow_c_array__` (one array) or, failing that, `__arrow_c_stream__` (chunks).
fn import_column(obj: &Bound<'_, PyAny>) -> PyResult<Column> {
    let py = obj.py();
    let mut chunks = Vec::new();
    if obj.hasattr(intern!(py, "__arrow_c_array__"))? {
        let pair = obj.call_method0(intern!(py, "__arrow_c_array__"))?;
        let pair = pair
            .cast::<PyTuple>()
            .map_err(|_| type_error("an __arrow_c_array__ that did not return a tuple"))?;
        let (schema, array) = (pair.get_item(0)?, pair.get_item(1)?);
        let schema = schema.cast::<PyCapsule>()?;
        let array = array.cast::<PyCapsule>()?;
        let schema_ptr = schema.pointer_checked(Some(SCHEMA_CAPSULE))?;
        let array_ptr = array.pointer_checked(Some(ARRAY_CAPSULE))?;
        // SAFETY: the capsules are named as the PyCapsule interface requires, so they hold an
        // ArrowSchema and an ArrowArray. The schema stays owned by its capsule (borrowed for the
        // import); the array is moved out, leaving a released one for the capsule's destructor.
        let data = unsafe {
            let schema = schema_ptr.cast::<FFI_ArrowSchema>().as_ref();
            let array = FFI_ArrowArray::from_raw(array_ptr.cast::<FFI_ArrowArray>().as_ptr());
            from_ffi(array, schema)
        }
        .map_err(|e| arrow_error("array", e))?;
        chunks.push(string_column(make_array_checked(data)?)?);
    } else if obj.hasattr(intern!(py, "__arrow_c_stream__"))? {
        let capsule = obj.call_method0(intern!(py, "__arrow_c_stream__"))?;
        let capsule = capsule.cast::<PyCapsule>()?;
        let ptr = capsule.pointer_checked(Some(STREAM_CAPSULE))?;
        // SAFETY: a capsule named "arrow_array_stream" holds an ArrowArrayStream; it is moved
        // out (the capsule keeps a released one) and released when `stream` drops.
        let mut stream =
            unsafe { FFI_ArrowArrayStream::from_raw(ptr.cast::<FFI_ArrowArrayStream>().as_ptr()) };
        let data_type = stream_type(&mut stream)?;
        while let Some(data) = stream_next(&mut stream, &data_type)? {
            chunks.push(string_column(make_array_checked(data)?)?);
        }
        if chunks.is_empty() {
            // No chunks still says which type the column would have had.
            string_column(arrow_array::new_empty_array(&data_type))?;
        }
    } else {
        return Err(type_error(type_name(obj)));
    }
    Ok(Column { chunks })
}

fn make_array_checked(data: arrow_data::ArrayData) -> PyResult<ArrayRef> {
    // Cheap checks (buffer counts and sizes) that the typed arrays' constructors would otherwise
    // assert; the offsets and text of each row are checked when it is encoded. An empty array
    // has no rows to read (producers export empty slices with buffers that do not agree).
    if data.is_empty() {
        return Ok(arrow_array::new_empty_array(data.data_type()));
    }
    data.validate().map_err(|e| arrow_error("array", e))?;
    Ok(make_array(data))
}

fn stream_error(stream: &mut FFI_ArrowArrayStream, code: i32) -> PyErr {
    let message = stream.get_last_error.and_then(|last_error| {
        // SAFETY: the callback belongs to this live stream; it returns NULL or a C string valid
        // until the next call on the stream.
        let text = unsafe { last_error(stream) };
        (!text.is_null()).then(|| {
            unsafe { CStr::from_ptr(text) }
                .to_string_lossy()
                .into_owned()
        })
    });
    arrow_error(
        "stream",
        message.unwrap_or_else(|| format!("the producer returned error code {code}")),
    )
}

fn stream_type(stream: &mut FFI_ArrowArrayStream) -> PyResult<DataType> {
    let Some(get_schema) = stream.get_schema else {
        return Err(arrow_error("stream", "it is released or has no get_schema"));
    };
    let mut schema = FFI_ArrowSchema::empty();
    // SAFETY: a live stream's callback, writing into a schema we own (released on drop).
    let code = unsafe { get_schema(stream, &mut schema) };
    if code != 0 {
        return Err(stream_error(stream, code));
    }
    Field::try_from(&schema)
        .map(|f| f.data_type().clone())
        .map_err(|e| arrow_error("stream's schema", e))
}

fn stream_next(
    stream: &mut FFI_ArrowArrayStream,
    data_type: &DataType,
) -> PyResult<Option<arrow_data::ArrayData>> {
    let Some(get_next) = stream.get_next else {
        return Err(arrow_error("stream", "it has no get_next"));
    };
    let mut array = FFI_ArrowArray::empty();
    // SAFETY: a live stream's callback, writing into an array we own.
    let code = unsafe { get_next(stream, &mut array) };
    if code != 0 {
        return Err(stream_error(stream, code));
    }
    if array.is_released() {
        return Ok(None);
    }
    // SAFETY: the producer made `array` for the stream's schema, `data_type`.
    unsafe { from_ffi_and_data_type(array, data_type.clone()) }
        .map(Some)
        .map_err(|e| arrow_error("stream's array", e))
}

/// `string` / `large_string` rows, read from the offsets and data buffers.
struct OffsetRows<'a, O: OffsetSizeTrait>(&'a GenericStringArray<O>);

impl<O: OffsetSizeTrait> OffsetRows<'_, O> {
    fn span(&self, i: usize) -> Option<(usize, usize)> {
        let offsets = self.0.value_offsets();
        let start = offsets.get(i)?.as_usize();
        let end = offsets.get(i + 1)?.as_usize();
        (start <= end).then_some((start, end))
    }
}

fn not_utf8(i: usize, e: std::str::Utf8Error) -> Error {
    Error::InvalidArgument(format!(
        "row {i} of the Arrow column is not valid UTF-8: {e}"
    ))
}

fn out_of_bounds(i: usize) -> Error {
    Error::InvalidArgument(format!(
        "row {i} of the Arrow column points outside its data buffer (a malformed array)"
    ))
}

impl<O: OffsetSizeTrait> Docs for OffsetRows<'_, O> {
    fn count(&self) -> usize {
        self.0.len()
    }
    fn byte_len(&self, i: usize) -> usize {
        match self.span(i) {
            Some((start, end)) if self.0.is_valid(i) => end - start,
            _ => 0,
        }
    }
    fn text(&self, i: usize) -> Result<&str> {
        if self.0.is_null(i) {
            return Ok("");
        }
        let (start, end) = self.span(i).ok_or_else(|| out_of_bounds(i))?;
        let bytes = self
            .0
            .value_data()
            .get(start..end)
            .ok_or_else(|| out_of_bounds(i))?;
        std::str::from_utf8(bytes).map_err(|e| not_utf8(i, e))
    }
}

/// `string_view` rows: 16-byte views, the text inline (12 bytes or less) or in a data buffer.
struct ViewRows<'a>(&'a StringViewArray);

impl ViewRows<'_> {
    fn bytes(&self, i: usize) -> Option<&[u8]> {
        let view = *self.0.views().get(i)?;
        let len = view as u32 as usize;
        if len <= 12 {
            let raw: &[u8] = self.0.views().inner().as_slice();
            return raw.get(i * 16 + 4..i * 16 + 4 + len);
        }
        let buffer = (view >> 64) as u32 as usize;
        let offset = (view >> 96) as u32 as usize;
        self.0.data_buffers().get(buffer)?.get(offset..offset + len)
    }
}

impl Docs for ViewRows<'_> {
    fn count(&self) -> usize {
        self.0.len()
    }
    fn byte_len(&self, i: usize) -> usize {
        match self.0.views().get(i) {
            Some(&view) if self.0.is_valid(i) => view as u32 as usize,
            _ => 0,
        }
    }
    fn text(&self, i: usize) -> Result<&str> {
        if self.0.is_null(i) {
            return Ok("");
        }
        let bytes = self.bytes(i).ok_or_else(|| out_of_bounds(i))?;
        std::str::from_utf8(bytes).map_err(|e| not_utf8(i, e))
    }
}

/// Encodes every row of an Arrow string column (see `fastllm.arrow` for the Python API):
/// returns (tokens, offsets, null count).
#[pyfunction]
#[pyo3(signature = (core_bpe, column, eot=None, num_threads=0))]
#[allow(clippy::type_complexity)]
fn encode_ordinary_arrow<'py>(
    py: Python<'py>,
    core_bpe: &Bound<'py, PyCoreBpe>,
    column: &Bound<'py, PyAny>,
    eot: Option<Rank>,
    num_threads: usize,
) -> PyResult<(Bound<'py, PyArray1<Rank>>, Bound<'py, PyArray1<i64>>, usize)> {
    let column = import_column(column)?;
    let bpe = &core_bpe.get().inner;
    let mut nulls = 0;
    let (mut small, mut large, mut views) = (Vec::new(), Vec::new(), Vec::new());
    for chunk in &column.chunks {
        nulls += chunk.null_count();
        let any = chunk.as_any();
        if let Some(a) = any.downcast_ref::<GenericStringArray<i32>>() {
            small.push(OffsetRows(a));
        } else if let Some(a) = any.downcast_ref::<GenericStringArray<i64>>() {
            large.push(OffsetRows(a));
        } else if let Some(a) = any.downcast_ref::<StringViewArray>() {
            views.push(ViewRows(a));
        }
    }
    // Chunks keep their order: a stream has one type, so only one of the three lists is used.
    let parts: Vec<&dyn Docs> = small
        .iter()
        .map(|d| d as &dyn Docs)
        .chain(large.iter().map(|d| d as &dyn Docs))
        .chain(views.iter().map(|d| d as &dyn Docs))
        .collect();
    if parts.len() != column.chunks.len() {
        return Err(type_error("chunks of mixed types"));
    }
    let out = py.detach(|| flat::encode_ordinary_flat(bpe, &parts, eot, num_threads))?;
    drop(parts);
    drop(column);
    Ok((
        out.tokens.into_pyarray(py),
        out.offsets.into_pyarray(py),
        nulls,
    ))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(encode_ordinary_arrow, m)?)?;
    Ok(())
}
