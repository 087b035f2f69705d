// CSV loader (data.hpp): RFC 4180 records into a Dataset, one row at a time.
//
// The tokenizer walks the bytes once and hands out one record at a time in a reused buffer, so a
// 60000 x 785 file costs its floats, not 47 million strings. Numbers go through std::from_chars
// behind a grammar check of our own (from_chars alone would take "inf", "nan" and "1e" followed by
// anything), so parsing is the same in every locale. Labels are collected as strings and only
// ordered into classes at the end, when all of them are known. Every error names
// NAME:LINE:FIELD (1-based; the line where the field starts) and the column's header name when
// there is one.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "backprop/data.hpp"
#include "backprop/error.hpp"
#include "data/gzip.hpp"
#include "data/names.hpp"

namespace backprop {

namespace {

// How much of a cell an error message echoes.
constexpr std::size_t kMaxEcho = 40;

bool is_blank(char c) {
  return c == ' ' || c == '\t';
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_blank(s.back())) s.remove_suffix(1);
  return s;
}

// Length of the valid UTF-8 sequence starting at s[i], or 0 when it is not one (overlong forms,
// surrogates and code points past U+10FFFF are invalid, as RFC 3629 says).
std::size_t utf8_sequence(std::string_view s, std::size_t i) {
  auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = b(i);
  if (c < 0x80) return 1;
  std::size_t len;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  if (b(i + 1) < lo || b(i + 1) > hi) return 0;
  for (std::size_t k = 2; k < len; ++k) {
    if (b(i + k) < 0x80 || b(i + k) > 0xBF) return 0;
  }
  return len;
}

bool valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    std::size_t n = utf8_sequence(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

// A cell as a message may show it: quoted, control bytes and invalid UTF-8 escaped, so the
// message stays one printable line whatever the file holds; long cells are cut.
std::string echo(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out = "'";
  std::size_t i = 0;
  while (i < s.size() && i < kMaxEcho) {
    auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = utf8_sequence(s, i);
    if (c >= 0x80 && n > 1) {
      out.append(s.substr(i, n));
      i += n;
      continue;
    }
    if (c == '\t') {
      out += "\\t";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c < 0x20 || c >= 0x7F) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
    } else {
      out += static_cast<char>(c);
    }
    ++i;
  }
  if (i < s.size()) out += "...";
  out += "'";
  return out;
}

enum class NumberStatus { kOk, kNotNumber, kNonFinite, kOverflow };

// [+|-] (digits [. [digits]] | . digits) [(e|E) [+|-] digits], surrounded by optional spaces and
// tabs. Values too small for float round to zero (the nearest float); too large is kOverflow.
NumberStatus parse_number(std::string_view text, float& out) {
  std::string_view s = trim(text);
  if (s.empty()) return NumberStatus::kNotNumber;
  // from_chars takes '-' but not '+'; skip a '+' only where a number follows, so "+-1" stays bad.
  if (s[0] == '+') {
    if (s.size() < 2 || !(is_digit(s[1]) || s[1] == '.')) return NumberStatus::kNotNumber;
    s.remove_prefix(1);
  }
  std::size_t i = 0;
  bool negative = s[i] == '-';
  if (negative) ++i;
  {
    // Named so the message can say "not finite" rather than "not a number".
    std::string word;
    for (std::size_t k = i; k < s.size() && word.size() < 8; ++k) {
      word += static_cast<char>(std::tolower(static_cast<unsigned char>(s[k])));
    }
    if (word == "nan" || word == "inf" || word == "infinity" || word.starts_with("nan(")) {
      return NumberStatus::kNonFinite;
    }
  }
  std::size_t int_begin = i;
  while (i < s.size() && is_digit(s[i])) ++i;
  std::size_t int_end = i;
  std::size_t frac_begin = i, frac_end = i;
  if (i < s.size() && s[i] == '.') {
    frac_begin = ++i;
    while (i < s.size() && is_digit(s[i])) ++i;
    frac_end = i;
  }
  if (int_end == int_begin && frac_end == frac_begin) return NumberStatus::kNotNumber;
  std::int64_t exponent = 0;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    bool exp_negative = false;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) exp_negative = s[i++] == '-';
    std::size_t exp_begin = i;
    while (i < s.size() && is_digit(s[i])) {
      // Saturate: anything past a billion is out of float's range either way.
      if (exponent < 1000000000) exponent = exponent * 10 + (s[i] - '0');
      ++i;
    }
    if (i == exp_begin) return NumberStatus::kNotNumber;
    if (exp_negative) exponent = -exponent;
  }
  if (i != s.size()) return NumberStatus::kNotNumber;

  float v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v, std::chars_format::general);
  if (ec == std::errc() && ptr == s.data() + s.size()) {
    if (!std::isfinite(v)) return NumberStatus::kOverflow;
    out = v;
    return NumberStatus::kOk;
  }
  if (ec != std::errc::result_out_of_range) return NumberStatus::kNotNumber;
  // Out of range is too large or too small; the decimal exponent of the leading non-zero digit
  // tells which (float's range is 1e-45 .. 3.4e38, so the split at 1 is far from both ends).
  std::int64_t lead = 0;
  bool found = false;
  for (std::size_t k = int_begin; k < int_end && !found; ++k) {
    if (s[k] != '0') {
      lead = static_cast<std::int64_t>(int_end - k) - 1;
      found = true;
    }
  }
  for (std::size_t k = frac_begin; k < frac_end && !found; ++k) {
    if (s[k] != '0') {
      lead = -static_cast<std::int64_t>(k - frac_begin) - 1;
      found = true;
    }
  }
  if (found && lead + exponent >= 0) return NumberStatus::kOverflow;
  out = negative ? -0.0f : 0.0f;
  return NumberStatus::kOk;
}

bool looks_numeric(std::string_view s) {
  float v;
  return parse_number(s, v) != NumberStatus::kNotNumber;
}

// -?digits as a column index; anything else is a column name.
bool parse_index(std::string_view s, std::int64_t& out, bool& overflow) {
  overflow = false;
  if (s.empty()) return false;
  std::size_t start = s[0] == '-' ? 1 : 0;
  if (start == s.size()) return false;
  for (std::size_t k = start; k < s.size(); ++k) {
    if (!is_digit(s[k])) return false;
  }
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  overflow = ec != std::errc() || ptr != s.data() + s.size();
  return true;
}

// One record: the first `size` fields are valid; the buffers are reused from row to row.
struct Record {
  std::vector<std::string> fields;
  std::vector<std::uint64_t> lines;  // the line where each field starts
  std::size_t size = 0;
  std::uint64_t line = 0;   // the line where the record starts
  std::uint64_t bytes = 0;  // its length in the file, without the line end

  std::string_view field(std::size_t i) const { return fields[i]; }
};

// Message places: "NAME:LINE" and "NAME:LINE:FIELD (column 'header name')".
class Places {
 public:
  explicit Places(const std::string& name) : name_(name) {}
  void set_header(const std::vector<std::string>* header) { header_ = header; }
  const std::string& name() const { return name_; }
  std::string line(std::uint64_t line) const { return name_ + ":" + std::to_string(line); }
  std::string cell(std::uint64_t line, std::size_t col) const {
    std::string out = this->line(line) + ":" + std::to_string(col + 1);
    if (header_ != nullptr && col < header_->size()) {
      out += " (column " + echo((*header_)[col]) + ")";
    }
    return out;
  }

 private:
  const std::string& name_;
  const std::vector<std::string>* header_ = nullptr;
};

class CsvReader {
 public:
  CsvReader(std::string_view text, const Places& places, std::uint64_t max_line_bytes)
      : p_(text.data()),
        end_(text.data() + text.size()),
        places_(places),
        max_line_(max_line_bytes) {}

  // Reads the next record that is not a blank line (empty, or only spaces and tabs). False at the
  // end of the data.
  bool next(Record& r) {
    if (!skip_blank_lines()) return false;
    r.size = 0;
    r.line = line_;
    record_start_ = p_;
    for (;;) {
      std::size_t f = r.size;
      if (r.fields.size() <= f) {
        r.fields.emplace_back();
        r.lines.push_back(0);
      }
      std::string& field = r.fields[f];
      field.clear();
      r.lines[f] = line_;
      ++r.size;
      const char* q = p_;
      while (q < end_ && is_blank(*q)) ++q;
      bool ended =
          q < end_ && *q == '"' ? read_quoted(q + 1, r, f, field) : read_unquoted(r, f, field);
      if (ended) {
        r.bytes = static_cast<std::uint64_t>(record_end_ - record_start_);
        return true;
      }
    }
  }

 private:
  // Skips blank lines; false when only blanks remain.
  bool skip_blank_lines() {
    for (;;) {
      const char* q = p_;
      while (q < end_ && is_blank(*q)) ++q;
      if (q == end_) {
        p_ = q;
        return false;
      }
      if (*q != '\n' && *q != '\r') return true;
      p_ = q;
      consume_line_end();
    }
  }

  // At '\r' or '\n': CRLF, LF and a lone CR each end one line.
  void consume_line_end() {
    if (*p_ == '\r' && p_ + 1 < end_ && p_[1] == '\n') ++p_;
    ++p_;
    ++line_;
  }

  void check_length(const Record& r) const {
    if (static_cast<std::uint64_t>(p_ - record_start_) > max_line_) {
      throw Error(ErrorCode::kLimit, places_.line(r.line) + ": expected a line of at most " +
                                         std::to_string(max_line_) +
                                         " bytes (max_line_bytes), found a longer one");
    }
  }

  [[noreturn]] void fail_nul(std::size_t f) const {
    throw Error(ErrorCode::kFormat, places_.cell(line_, f) +
                                        ": expected text, found a NUL byte at byte offset " +
                                        std::to_string(p_ - record_start_) + " of the row");
  }

  // After a field: ',' starts the next one (false); a line end or the end of data ends the record
  // (true).
  bool end_field() {
    if (p_ == end_) {
      record_end_ = p_;
      return true;
    }
    if (*p_ == ',') {
      ++p_;
      return false;
    }
    record_end_ = p_;
    consume_line_end();
    return true;
  }

  bool read_unquoted(const Record& r, std::size_t f, std::string& field) {
    const char* begin = p_;
    // Never scan past the line limit: a 1 GiB line without a newline fails after max_line bytes.
    auto used = static_cast<std::uint64_t>(p_ - record_start_);
    std::uint64_t budget = used <= max_line_ ? max_line_ - used : 0;
    auto avail = static_cast<std::uint64_t>(end_ - p_);
    const char* stop = p_ + (budget < avail ? budget + 1 : avail);
    while (p_ < stop) {
      char c = *p_;
      if (c == ',' || c == '\n' || c == '\r') break;
      if (c == '"') {
        throw Error(ErrorCode::kFormat,
                    places_.cell(r.lines[f], f) +
                        ": expected a field without quotes or a fully quoted field, found a "
                        "stray '\"' in " +
                        echo(std::string_view(begin, static_cast<std::size_t>(p_ + 1 - begin))) +
                        " (quote the whole field and double any quote inside it)");
      }
      if (c == '\0') fail_nul(f);
      ++p_;
    }
    check_length(r);
    field.assign(begin, p_);
    return end_field();
  }

  bool read_quoted(const char* q, const Record& r, std::size_t f, std::string& field) {
    p_ = q;
    const char* run = p_;
    for (;;) {
      check_length(r);
      if (p_ == end_) {
        throw Error(ErrorCode::kFormat, places_.cell(r.lines[f], f) +
                                            ": expected a closing '\"' for the quoted "
                                            "field opened on line " +
                                            std::to_string(r.lines[f]) +
                                            ", found the end of the file (line " +
                                            std::to_string(line_) + ")");
      }
      char c = *p_;
      if (c == '"') {
        field.append(run, p_);
        if (p_ + 1 < end_ && p_[1] == '"') {
          field += '"';
          p_ += 2;
          run = p_;
          continue;
        }
        ++p_;
        break;
      }
      if (c == '\0') fail_nul(f);
      // Line ends inside quotes belong to the field; they only move the line count.
      if (c == '\n' || (c == '\r' && (p_ + 1 == end_ || p_[1] != '\n'))) ++line_;
      ++p_;
    }
    while (p_ < end_ && is_blank(*p_)) ++p_;
    check_length(r);
    if (p_ < end_ && *p_ != ',' && *p_ != '\n' && *p_ != '\r') {
      throw Error(ErrorCode::kFormat,
                  places_.cell(r.lines[f], f) +
                      ": expected ',' or the end of the line after the closing '\"', found " +
                      echo(std::string_view(p_, 1)));
    }
    return end_field();
  }

  const char* p_;
  const char* end_;
  const char* record_start_ = nullptr;
  const char* record_end_ = nullptr;
  const Places& places_;
  std::uint64_t max_line_;
  std::uint64_t line_ = 1;
};

// The first row is a header when some column is non-numeric in it and numeric in the second row,
// or when the file has a single row and none of its fields is a number.
bool detect_header(const Record& first, const Record* second) {
  if (second == nullptr) {
    for (std::size_t j = 0; j < first.size; ++j) {
      if (looks_numeric(first.field(j))) return false;
    }
    return true;
  }
  std::size_t n = std::min(first.size, second->size);
  for (std::size_t j = 0; j < n; ++j) {
    if (!looks_numeric(first.field(j)) && looks_numeric(second->field(j))) return true;
  }
  return false;
}

bool is_integer_label(std::string_view s, std::int64_t& value) {
  if (s.empty()) return false;
  std::size_t start = s[0] == '-' ? 1 : 0;
  if (start == s.size()) return false;
  for (std::size_t k = start; k < s.size(); ++k) {
    if (!is_digit(s[k])) return false;
  }
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  return ec == std::errc() && ptr == s.data() + s.size();
}

// Which columns hold what, decided once from the first row and the options.
struct Layout {
  std::size_t columns = 0;
  std::vector<std::size_t> features;  // file columns, in Dataset order
  std::vector<std::size_t> labels;    // file columns, in label_columns order
  std::vector<std::string> feature_names;
  std::vector<std::string> label_names;
};

std::size_t resolve_label_column(const std::string& spec, const std::vector<std::string>& header,
                                 bool has_header, std::size_t columns, const std::string& name) {
  std::int64_t index = 0;
  bool overflow = false;
  if (parse_index(spec, index, overflow)) {
    auto n = static_cast<std::int64_t>(columns);
    if (!overflow && index < 0) index += n;
    if (overflow || index < 0 || index >= n) {
      throw Error(ErrorCode::kData,
                  name + ": label column " + spec + " is out of range: the file has " +
                      std::to_string(columns) + " columns (0.." + std::to_string(columns - 1) +
                      ", or -" + std::to_string(columns) + "..-1)");
    }
    return static_cast<std::size_t>(index);
  }
  if (!has_header) {
    throw Error(ErrorCode::kUsage, name + ": label column '" + spec +
                                       "' is a name, but the file is read without a header");
  }
  auto it = std::find(header.begin(), header.end(), spec);
  if (it == header.end()) {
    throw Error(ErrorCode::kData, name + ": no column named " + echo(spec) + " in the header");
  }
  return static_cast<std::size_t>(it - header.begin());
}

Layout plan_columns(const CsvOptions& options, const std::vector<std::string>& header,
                    bool has_header, std::size_t columns, const std::string& name) {
  Layout layout;
  layout.columns = columns;
  const bool with_labels = options.labels_required;
  if (with_labels) {
    std::vector<std::string> specs = options.label_columns;
    if (specs.empty() && has_header) specs = options.default_label_columns;
    if (specs.empty()) specs.push_back("-1");
    if (options.task == Task::kClassify && specs.size() != 1) {
      throw Error(ErrorCode::kUsage, name +
                                         ": classification takes exactly one label column, "
                                         "got " +
                                         std::to_string(specs.size()));
    }
    for (const std::string& spec : specs) {
      std::size_t col = resolve_label_column(spec, header, has_header, columns, name);
      if (std::find(layout.labels.begin(), layout.labels.end(), col) != layout.labels.end()) {
        throw Error(ErrorCode::kUsage, name + ": label column " + echo(spec) + " names column " +
                                           std::to_string(col) +
                                           ", which is already a label column");
      }
      layout.labels.push_back(col);
      layout.label_names.push_back(has_header ? header[col] : "column " + std::to_string(col));
    }
  }
  auto is_label = [&](std::size_t col) {
    return std::find(layout.labels.begin(), layout.labels.end(), col) != layout.labels.end();
  };

  const std::vector<std::string>& wanted = options.feature_names;
  if (!wanted.empty()) {
    // Hash lookups, not searches: a model's features and a header may both be 100,000 long.
    std::unordered_set<std::string_view> listed;
    for (const std::string& f : wanted) {
      if (!listed.insert(f).second) {
        throw Error(ErrorCode::kUsage,
                    name + ": the model's feature " + echo(f) + " is listed twice");
      }
    }
    if (has_header) {
      std::unordered_map<std::string_view, std::size_t> column_of;
      for (std::size_t col = 0; col < header.size(); ++col) column_of.emplace(header[col], col);
      for (const std::string& f : wanted) {
        auto it = column_of.find(f);
        if (it == column_of.end()) {
          throw Error(ErrorCode::kData, name + ": no column named " + echo(f) +
                                            " in the header (a feature the model takes)");
        }
        const std::size_t col = it->second;
        if (is_label(col)) {
          throw Error(ErrorCode::kData, name + ": column " + echo(f) +
                                            " is both a feature the model takes and a label "
                                            "column");
        }
        layout.features.push_back(col);
      }
    } else {
      std::size_t expected = wanted.size() + layout.labels.size();
      if (columns != expected) {
        throw Error(
            ErrorCode::kData,
            name + ":1: expected " + std::to_string(expected) + " columns (" +
                std::to_string(wanted.size()) + " features the model takes" +
                (layout.labels.empty() ? std::string()
                                       : " + " + std::to_string(layout.labels.size()) + " label") +
                "), found " + std::to_string(columns));
      }
      for (std::size_t col = 0; col < columns; ++col) {
        if (!is_label(col)) layout.features.push_back(col);
      }
    }
    layout.feature_names = wanted;
  } else {
    for (std::size_t col = 0; col < columns; ++col) {
      if (is_label(col)) continue;
      layout.features.push_back(col);
      layout.feature_names.push_back(
          has_header ? header[col] : detail::default_feature_name(layout.features.size() - 1));
    }
  }
  if (layout.features.empty()) {
    throw Error(ErrorCode::kData, name + ": no feature columns: the file has " +
                                      std::to_string(columns) + " column" +
                                      (columns == 1 ? "" : "s") + ", all used as labels");
  }
  return layout;
}

// Turns records into the Dataset's arrays, checking every cell.
class RowSink {
 public:
  RowSink(const Layout& layout, const CsvOptions& options, const ReadLimits& limits,
          const Places& places, const Record& first)
      : layout_(layout),
        options_(options),
        limits_(limits),
        places_(places),
        first_line_(first.line) {
    for (std::size_t c = 0; c < options.class_names.size(); ++c) {
      const std::string& cls = options.class_names[c];
      if (!given_.emplace(cls, static_cast<std::int32_t>(c)).second) {
        throw Error(ErrorCode::kUsage,
                    places.name() + ": the model's class " + echo(cls) + " is listed twice");
      }
    }
  }

  // A guess at the row count from the first data row's size, so the feature array is allocated
  // about once instead of doubling past the file's needs.
  void reserve_for(std::uint64_t file_bytes, const Record& row) {
    std::uint64_t rows = file_bytes / (row.bytes + 1) + 1;
    // Each value takes at least 2 bytes of text ("0,"), which bounds any guess.
    std::uint64_t values = std::min<std::uint64_t>(rows * layout_.features.size() + rows / 16,
                                                   file_bytes / 2 + layout_.features.size());
    x_.reserve(static_cast<std::size_t>(values));
  }

  void add(const Record& r) {
    if (r.size != layout_.columns) {
      throw Error(ErrorCode::kFormat, places_.line(r.line) + ": expected " +
                                          std::to_string(layout_.columns) + " fields (as on line " +
                                          std::to_string(first_line_) + "), found " +
                                          std::to_string(r.size));
    }
    for (std::size_t col : layout_.features) x_.push_back(number(r, col, "a number"));
    if (!options_.labels_required) return;
    if (options_.task == Task::kRegress) {
      for (std::size_t col : layout_.labels) {
        targets_.push_back(number(r, col, "a number (regression target)"));
      }
      return;
    }
    std::size_t col = layout_.labels[0];
    std::string_view label = trim(r.field(col));
    if (label.empty()) {
      throw Error(ErrorCode::kData, places_.cell(r.lines[col], col) +
                                        ": expected a class label, found an empty field");
    }
    if (!valid_utf8(label)) {
      throw Error(ErrorCode::kFormat, places_.cell(r.lines[col], col) +
                                          ": expected a UTF-8 class label, found " + echo(label));
    }
    std::string key(label);
    if (!options_.class_names.empty()) {
      auto it = given_.find(key);
      if (it == given_.end()) {
        throw Error(ErrorCode::kData, places_.cell(r.lines[col], col) + ": class " + echo(key) +
                                          " was not seen in training (the model has " +
                                          std::to_string(given_.size()) + " classes)");
      }
      labels_.push_back(it->second);
      return;
    }
    auto it = seen_.find(key);
    if (it == seen_.end()) {
      if (seen_.size() >= limits_.max_classes) {
        throw Error(ErrorCode::kLimit,
                    places_.cell(r.lines[col], col) + ": class " + echo(key) + " would be class " +
                        std::to_string(seen_.size() + 1) + ", over the limit of " +
                        std::to_string(limits_.max_classes) +
                        " distinct labels (max_classes; is this the label column?)");
      }
      it = seen_.emplace(key, static_cast<std::int32_t>(first_seen_.size())).first;
      first_seen_.push_back(std::move(key));
    }
    labels_.push_back(it->second);
  }

  Index rows() const {
    return static_cast<Index>(x_.size() / std::max<std::size_t>(1, layout_.features.size()));
  }

  void finish(Dataset& ds) {
    // The row-count guess can overshoot when the first row is short; give back a large excess.
    if (x_.capacity() > x_.size() + x_.size() / 4) x_.shrink_to_fit();
    ds.x_f32 = std::move(x_);
    ds.targets = std::move(targets_);
    if (!options_.labels_required || options_.task != Task::kClassify) return;
    if (!options_.class_names.empty()) {
      ds.class_names = options_.class_names;
      ds.labels = std::move(labels_);
      return;
    }
    // Classes in numeric order when every label is an integer ("10" after "9"), else in byte
    // order; ties between spellings of one integer ("07", "7") fall back to byte order.
    std::vector<std::int64_t> value(first_seen_.size());
    bool all_integers = true;
    for (std::size_t c = 0; c < first_seen_.size() && all_integers; ++c) {
      all_integers = is_integer_label(first_seen_[c], value[c]);
    }
    std::vector<std::int32_t> order(first_seen_.size());
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](std::int32_t a, std::int32_t b) {
      if (all_integers && value[a] != value[b]) return value[a] < value[b];
      return first_seen_[a] < first_seen_[b];
    });
    std::vector<std::int32_t> rank(first_seen_.size());
    for (std::size_t k = 0; k < order.size(); ++k) {
      rank[order[k]] = static_cast<std::int32_t>(k);
      ds.class_names.push_back(first_seen_[order[k]]);
    }
    for (std::int32_t& l : labels_) l = rank[l];
    ds.labels = std::move(labels_);
  }

 private:
  float number(const Record& r, std::size_t col, const char* what) const {
    float v = 0;
    std::string_view text = r.field(col);
    switch (parse_number(text, v)) {
      case NumberStatus::kOk:
        return v;
      case NumberStatus::kNotNumber:
        throw Error(ErrorCode::kFormat,
                    places_.cell(r.lines[col], col) + ": expected " + what + ", found " +
                        (trim(text).empty() ? std::string("an empty field") : echo(text)));
      case NumberStatus::kNonFinite:
        throw Error(ErrorCode::kFormat, places_.cell(r.lines[col], col) + ": expected " + what +
                                            " (finite), found " + echo(text));
      case NumberStatus::kOverflow:
        throw Error(ErrorCode::kFormat,
                    places_.cell(r.lines[col], col) + ": expected " + what +
                        " within float range (magnitude at most 3.4028235e38), found " +
                        echo(text));
    }
    return v;
  }

  const Layout& layout_;
  const CsvOptions& options_;
  const ReadLimits& limits_;
  const Places& places_;
  std::uint64_t first_line_;
  std::vector<float> x_;
  std::vector<float> targets_;
  std::vector<std::int32_t> labels_;
  std::unordered_map<std::string, std::int32_t> seen_;
  std::vector<std::string> first_seen_;
  std::unordered_map<std::string, std::int32_t> given_;
};

}  // namespace

Dataset parse_csv(std::span<const std::uint8_t> bytes, const std::string& name,
                  const CsvOptions& options, const ReadLimits& limits) {
  if (bytes.size() > limits.max_input_bytes) {
    throw Error(ErrorCode::kLimit,
                name + ": file is " + std::to_string(bytes.size()) + " bytes, over the limit of " +
                    std::to_string(limits.max_input_bytes) + " (--max-input-bytes)");
  }
  if (detail::is_gzip(bytes)) {
    throw Error(ErrorCode::kFormat, name +
                                        ": byte 0: expected CSV text, found gzip data (1F 8B);"
                                        " decompress it first");
  }
  std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);

  Places places(name);
  CsvReader reader(text, places, limits.max_line_bytes);
  Record first, second;
  if (!reader.next(first)) {
    throw Error(ErrorCode::kFormat, name + ": expected CSV data, found an empty file");
  }
  bool have_second = reader.next(second);

  bool labels_by_name = false;
  if (options.labels_required) {
    for (const std::string& spec : options.label_columns) {
      std::int64_t index;
      bool overflow;
      if (!parse_index(spec, index, overflow)) labels_by_name = true;
    }
  }
  bool has_header = false;
  switch (options.header) {
    case HeaderMode::kYes:
      has_header = true;
      break;
    case HeaderMode::kNo:
      has_header = false;
      break;
    case HeaderMode::kAuto:
      has_header = labels_by_name || detect_header(first, have_second ? &second : nullptr);
      break;
  }

  std::vector<std::string> header;
  if (has_header) {
    // Duplicates through a hash map: comparing each name with all before it took seconds for a
    // 1 MB header of 100,000 columns (fuzzing, RELIABILITY.md A.39).
    std::unordered_map<std::string_view, std::size_t> column_of;  // views into `first`
    column_of.reserve(first.size);
    for (std::size_t j = 0; j < first.size; ++j) {
      std::string_view h = trim(first.field(j));
      if (!valid_utf8(h)) {
        throw Error(ErrorCode::kFormat, places.cell(first.lines[j], j) +
                                            ": expected a UTF-8 column name, found " + echo(h));
      }
      const auto [it, fresh] = column_of.emplace(h, j);
      if (!fresh) {
        throw Error(ErrorCode::kFormat,
                    places.cell(first.lines[j], j) + ": duplicate column name " + echo(h) +
                        " (also column " + std::to_string(it->second + 1) + ")");
      }
      header.emplace_back(h);
    }
    places.set_header(&header);
  }

  Layout layout = plan_columns(options, header, has_header, first.size, name);
  RowSink sink(layout, options, limits, places, first);
  if (!has_header) {
    sink.reserve_for(text.size(), first);
    sink.add(first);
  }
  if (have_second) {
    if (has_header) sink.reserve_for(text.size(), second);
    sink.add(second);
    Record row;
    while (reader.next(row)) sink.add(row);
  }

  Index n = sink.rows();
  if (n == 0) {
    throw Error(ErrorCode::kData, name + ": no data rows (the file holds only a header)");
  }
  if (n < options.min_rows) {
    throw Error(ErrorCode::kData, name + ": expected at least " + std::to_string(options.min_rows) +
                                      " data rows, found " + std::to_string(n));
  }

  Dataset ds;
  ds.source = name;
  ds.format = DataFormat::kCsv;
  ds.labels_source = name;
  ds.task = options.task;
  ds.n = n;
  ds.n_features = static_cast<Index>(layout.features.size());
  ds.sample_shape = {ds.n_features};
  ds.value_scale = 1.0f;
  ds.feature_names = std::move(layout.feature_names);
  if (options.labels_required) ds.label_columns = std::move(layout.label_names);
  sink.finish(ds);
  return ds;
}

Dataset load_csv(const std::string& path, const CsvOptions& options, const ReadLimits& limits) {
  std::vector<std::uint8_t> bytes = read_file(path, limits.max_input_bytes);
  return parse_csv(bytes, path, options, limits);
}

}  // namespace backprop
