// Datasets and their loaders: IDX (raw or gzip), CSV and NumPy .npy, read fully into memory,
// validated before anything sized by the file is allocated.
//
// IDX (http://yann.lecun.com/exdb/mnist/): magic 00 00 TT ND (big-endian), where TT is the element
// type (08 u8, 09 i8, 0B i16, 0C i32, 0D f32, 0E f64) and ND the number of dimensions; then ND
// big-endian u32 sizes; then the elements, big-endian, row-major. The file must end exactly where
// the payload does. gzip is recognised by its content (1F 8B), never by the file name; concatenated
// members are read in order; a truncated stream, a bad CRC or length, and trailing garbage are
// errors, and decoding stops as soon as output passes what the header declared or the size cap.
//
// CSV: RFC 4180 (comma-separated, "quoted" fields with "" escapes, which may hold commas and line
// breaks). A UTF-8 byte-order mark and CRLF line ends are accepted, blank lines are skipped, a
// missing final newline is fine; NUL bytes and lines longer than ReadLimits::max_line_bytes are
// errors. Numbers are parsed in the C locale:
//   [+|-] (digits [. [digits]] | . digits) [(e|E) [+|-] digits]
// with surrounding spaces and tabs allowed; nan, inf, hex floats and values too large for float
// are errors (values too small for it round to zero). See docs/formats.md.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "backprop/io.hpp"
#include "backprop/matrix.hpp"

namespace backprop {

enum class Task { kClassify, kRegress };

// n examples of n_features values and their labels (classify) or targets (regress). Features are
// kept raw, as the file holds them; batches are converted to float and preprocessed on the way to
// the model, so images cost one byte per pixel in memory.
enum class DataFormat { kIdx, kCsv, kMemory, kNpy };

struct Dataset {
  std::string source;  // where it came from, for messages: "train-images-idx3-ubyte.gz"
  DataFormat format = DataFormat::kMemory;  // which loader made it
  Task task = Task::kClassify;
  Index n = 0;
  Index n_features = 0;
  std::vector<Index> sample_shape;  // {28, 28} for IDX images; {n_features} for CSV

  // Row-major n × n_features; exactly one of the two holds the features.
  std::vector<std::uint8_t> x_u8;  // IDX u8 data, as stored
  std::vector<float> x_f32;        // every other source
  // x_raw × value_scale maps the natural range of the data onto [0, 1]: 1/255 for u8 images,
  // 1/127 for i8, 1/32767 for i16, 1/2147483647 for i32, 1 for floats and CSV.
  float value_scale = 1.0f;

  std::vector<std::string> feature_names;  // n_features: the CSV header, or "x0", "x1", ...
  // The columns the labels or targets came from: the CSV header names, or "column 7" without a
  // header; "label" for IDX.
  std::vector<std::string> label_columns;
  std::string labels_source;  // the file the labels came from: the IDX labels file, or the CSV

  // classify: labels[i] in [0, class_names.size()); class_names[c] is the label as written in the
  // file ("3", "setosa"). Empty when the data has no labels (predict input).
  std::vector<std::int32_t> labels;
  std::vector<std::string> class_names;
  // regress: n × n_targets, row-major, n_targets == label_columns.size().
  std::vector<float> targets;

  // A shard (see Shard) holds rows [first_row, first_row + n) of a data set of total_rows rows;
  // a whole data set has first_row 0 and total_rows 0 (whole_rows() is then n).
  Index first_row = 0;
  Index total_rows = 0;
  Index whole_rows() const { return total_rows > 0 ? total_rows : n; }

  bool has_labels() const { return !labels.empty() || !targets.empty(); }
  Index n_targets() const { return static_cast<Index>(label_columns.size()); }
  // Width of the model output this data trains: classes, or targets.
  Index n_outputs() const {
    return task == Task::kClassify ? static_cast<Index>(class_names.size()) : n_targets();
  }
};

// One of `count` contiguous parts of a data set's rows, for data-parallel training where each
// rank holds only its part (`--shard-data`): part `index` holds rows [begin(n), end(n)), and the
// first n % count parts hold one row more than the others. Contiguous, so that a rank can read its
// rows of an uncompressed file without reading the rest.
struct Shard {
  int index = 0, count = 1;
  bool whole() const { return count == 1; }
  Index begin(Index n) const;
  Index end(Index n) const;
};

// Keeps only the shard's rows of a whole data set (features, labels, targets) and frees the rest;
// classes, names and shape are those of the whole. A no-op for the whole shard.
void keep_shard(Dataset& ds, Shard shard);

// ---------------------------------------------------------------------------------------------
// IDX

enum class IdxType : std::uint8_t {
  kU8 = 0x08,
  kI8 = 0x09,
  kI16 = 0x0B,
  kI32 = 0x0C,
  kF32 = 0x0D,
  kF64 = 0x0E,
};

struct IdxArray {
  IdxType type = IdxType::kU8;
  std::vector<std::uint32_t> dims;  // outermost first; none is 0
  std::vector<std::uint8_t> u8;     // type kU8: the elements as stored
  std::vector<double> values;       // every other type: the elements converted exactly to double
  std::uint64_t count() const;      // product of dims
};

// Parses a whole IDX file (raw or gzip, by content) held in memory. `name` names it in messages;
// errors inside a gzip file say "(inside NAME)". Throws Error(kFormat) or Error(kLimit).
IdxArray parse_idx(std::span<const std::uint8_t> bytes, const std::string& name,
                   const ReadLimits& limits);
IdxArray read_idx(const std::string& path, const ReadLimits& limits);

// An images file (ndims >= 2, n × d1 × ...) and its labels file (ndims == 1, integer type,
// n labels, each >= 0). Classes are 0..max label, named "0", "1", ...; features "x0", "x1", ...
// Non-finite float images are an error.
// With a shard, only the shard's images are read and checked when the images file is not
// compressed (its header and size are checked as for a whole read); a gzip file is decoded whole
// and the shard kept. The labels file is always read and checked whole (it decides the classes).
Dataset load_idx(const std::string& images_path, const std::string& labels_path,
                 const ReadLimits& limits, Shard shard = {});
// Images only (for predict): a Dataset with no labels.
Dataset load_idx_images(const std::string& images_path, const ReadLimits& limits);

// ---------------------------------------------------------------------------------------------
// CSV

enum class HeaderMode { kAuto, kYes, kNo };

struct CsvOptions {
  // kAuto: the first row is a header when some column is non-numeric in it and numeric in the
  // second row (or the file has one row of non-numbers). Selecting a label column by name forces
  // a header.
  HeaderMode header = HeaderMode::kAuto;
  Task task = Task::kClassify;
  // Label (classify: exactly one) or target (regress: one or more) columns, each a header name or
  // a 0-based index (negative counts from the end: -1 is the last column). Empty: the last column.
  std::vector<std::string> label_columns;
  // Used instead of the last column when label_columns is empty and the file has a header (eval
  // passes the trained model's label column names). Never forces a header.
  std::vector<std::string> default_label_columns;
  // false: the file holds features only (predict). label_columns is then ignored, unless
  // feature_names is given and the file has a header, in which case unknown columns are ignored.
  bool labels_required = true;

  // Reading data for a trained model (eval, predict):
  // the model's feature names. With a header, exactly these columns are taken, by name, in this
  // order, and other columns (a label, ids) are ignored; a missing name is an error. Without a
  // header the file must hold exactly feature_names.size() feature columns (plus the label
  // columns when labels are required).
  std::vector<std::string> feature_names;
  // the model's classes: labels are mapped onto these, and a label not among them is an error
  // ("class 'X' was not seen in training"). Empty: classes are the distinct labels found,
  // ordered numerically when every label is an integer, else by byte order.
  std::vector<std::string> class_names;

  Index min_rows = 1;  // fewer data rows is an error (training asks for 2)
};

Dataset parse_csv(std::span<const std::uint8_t> bytes, const std::string& name,
                  const CsvOptions& options, const ReadLimits& limits);
Dataset load_csv(const std::string& path, const CsvOptions& options, const ReadLimits& limits);

// ---------------------------------------------------------------------------------------------
// NumPy
//
// .npy (NumPy's own format, versions 1.0, 2.0 and 3.0): the 6-byte magic 93 'NUMPY', a major and a
// minor version byte, the header length (u16 little-endian for 1.0, u32 for 2.0 and 3.0), then the
// header: ASCII text holding a Python dict literal with exactly the keys 'descr' (a dtype string
// such as '<f4'), 'fortran_order' (True or False) and 'shape' (a tuple of integers), padded with
// spaces (and usually ended by '\n'); then the elements, exactly shape's product of them, to the
// end of the file. Accepted dtypes: bool (b1), int8..int64 (i1..i8), uint8..uint64 (u1..u8),
// float32 (f4) and float64 (f8), little- or big-endian ('<', '>', '|' for one byte). Rejected with
// a one-line error naming the file and the byte: Fortran-order arrays, object arrays ('|O', which
// only unpickling could read), structured, string, complex, float16 and datetime dtypes, '='
// (native, which a file cannot know), a header that is not such a dict (the parser accepts string,
// True/False and integer-tuple values only, no expressions), a shape whose byte size overflows or
// does not match the data, and .npz archives (ZIP). Nothing sized by the header is allocated
// before the size has been checked against the bytes really there.

enum class NpyType : std::uint8_t {
  kBool,
  kI8,
  kU8,
  kI16,
  kU16,
  kI32,
  kU32,
  kI64,
  kU64,
  kF32,
  kF64
};

struct NpyArray {
  NpyType type = NpyType::kF32;
  std::vector<std::uint64_t> shape;  // outermost first; empty for a 0-d array
  std::vector<std::uint8_t> data;    // the elements in C order, little-endian whatever the file's
  std::uint64_t count() const;       // product of shape (1 for a 0-d array)
};

// "float32", "uint8", ... as NumPy names the type.
std::string_view to_string(NpyType type);

// Parses a whole .npy file held in memory. `name` names it in messages. Throws Error(kFormat), or
// Error(kLimit) for a header over limits.max_header_bytes.
NpyArray parse_npy(std::span<const std::uint8_t> bytes, const std::string& name,
                   const ReadLimits& limits);
NpyArray read_npy(const std::string& path, const ReadLimits& limits);

// Features and labels from two .npy files (format kNpy).
// Features: n × d1 × ... (a 1-d array is n examples of one feature): uint8 (kept as bytes and
// scaled by 1/255, like IDX images), float32, or float64 (converted to the nearest float; each
// value must be finite and within float range). Named "x0", "x1", ...; sample_shape is d1 × ....
// Labels, task kClassify: shape (n) or (n, 1), an integer or bool dtype, or a float dtype holding
// whole numbers; each >= 0. Classes are 0..max label, named "0", "1", ..., as for IDX; label
// column "label". Task kRegress: shape (n) or (n, k), any accepted dtype, finite and within float
// range; targets named "y0", "y1", ....
// Errors name the file and the byte of a bad element, with its example index (kData), or a count
// or shape that does not fit (kData); parse errors as parse_npy.
// With a shard, only the shard's rows of the features file are read and checked (its header and
// size are checked as for a whole read); the labels file is read and checked whole.
Dataset load_npy(const std::string& features_path, const std::string& labels_path, Task task,
                 const ReadLimits& limits, Shard shard = {});
// Features only (for predict): a Dataset with no labels.
Dataset load_npy_features(const std::string& path, const ReadLimits& limits);

// A float32 array ('<f4', C order, format version 1.0) of the given shape, as np.save writes it:
// the header padded with spaces so that the data starts at a multiple of 64 bytes. values holds
// exactly the product of shape elements.
std::vector<std::uint8_t> serialize_npy(std::span<const float> values,
                                        const std::vector<std::uint64_t>& shape);

}  // namespace backprop
