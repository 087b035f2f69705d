// Tests for the CSV loader (src/data/csv.cpp): the tokenizer (RFC 4180 quoting, BOM, CRLF, blank
// lines), header detection, label and feature selection, class ordering, the number grammar, and
// every bad file of RELIABILITY.md cases 31-40.
#include <gtest/gtest.h>

#include <bit>
#include <chrono>
#include <clocale>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <locale>
#include <random>
#include <string>
#include <vector>

#include "backprop/data.hpp"
#include "backprop/error.hpp"
#include "test_util.hpp"

namespace backprop {
namespace {

using namespace backprop::test;

std::span<const std::uint8_t> bytes_of(const std::string& s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

Dataset parse(const std::string& text, const CsvOptions& options = {},
              const ReadLimits& limits = {}) {
  return parse_csv(bytes_of(text), "t.csv", options, limits);
}

CsvOptions regress(std::vector<std::string> label_columns) {
  CsvOptions o;
  o.task = Task::kRegress;
  o.label_columns = std::move(label_columns);
  return o;
}

using Floats = std::vector<float>;
using Strings = std::vector<std::string>;
using Labels = std::vector<std::int32_t>;

TEST(ParseCsv, ReadsAHeaderedFileWithStringLabels) {
  Dataset ds = parse(
      "sepal_length,sepal_width,species\n"
      "5.1,3.5,setosa\n"
      "7.0,3.2,versicolor\n"
      "6.3,3.3,virginica\n"
      "4.9,3.0,setosa\n");
  EXPECT_EQ(ds.source, "t.csv");
  EXPECT_EQ(ds.task, Task::kClassify);
  EXPECT_EQ(ds.n, 4);
  EXPECT_EQ(ds.n_features, 2);
  EXPECT_EQ(ds.sample_shape, (std::vector<Index>{2}));
  EXPECT_EQ(ds.x_f32, (Floats{5.1f, 3.5f, 7.0f, 3.2f, 6.3f, 3.3f, 4.9f, 3.0f}));
  EXPECT_TRUE(ds.x_u8.empty());
  EXPECT_EQ(ds.value_scale, 1.0f);
  EXPECT_EQ(ds.feature_names, (Strings{"sepal_length", "sepal_width"}));
  EXPECT_EQ(ds.label_columns, (Strings{"species"}));
  EXPECT_EQ(ds.class_names, (Strings{"setosa", "versicolor", "virginica"}));
  EXPECT_EQ(ds.labels, (Labels{0, 1, 2, 0}));
  EXPECT_TRUE(ds.targets.empty());
  EXPECT_EQ(ds.n_outputs(), 3);
}

TEST(ParseCsv, ReadsAFileWithoutHeaderAndOrdersIntegerClassesNumerically) {
  Dataset ds = parse("0.5,10\n1.5,9\n2.5,2\n3.5,10\n");
  EXPECT_EQ(ds.n, 4);
  EXPECT_EQ(ds.feature_names, (Strings{"x0"}));
  EXPECT_EQ(ds.label_columns, (Strings{"column 1"}));
  // "10" after "9": numeric, not byte order.
  EXPECT_EQ(ds.class_names, (Strings{"2", "9", "10"}));
  EXPECT_EQ(ds.labels, (Labels{2, 1, 0, 2}));
  EXPECT_EQ(ds.x_f32, (Floats{0.5f, 1.5f, 2.5f, 3.5f}));
}

TEST(ParseCsv, OrdersMixedLabelsByBytes) {
  // Forced: by the detection rule the first row "1,b" over "2,10" would be a header.
  CsvOptions no;
  no.header = HeaderMode::kNo;
  Dataset ds = parse("1,b\n2,10\n3,9\n4,B\n5,-1\n", no);
  EXPECT_EQ(ds.class_names, (Strings{"-1", "10", "9", "B", "b"}));
  EXPECT_EQ(ds.labels, (Labels{4, 1, 2, 3, 0}));
  Dataset neg = parse("1,-3\n2,007\n3,7\n4,-10\n");
  EXPECT_EQ(neg.class_names, (Strings{"-10", "-3", "007", "7"}));
}

TEST(ParseCsv, DetectsTheHeaderBothWays) {
  // A non-numeric first row over a numeric second row is a header...
  EXPECT_EQ(parse("a,b,label\n1,2,x\n").n, 1);
  // ...numbers in the first row are data, and string labels alone do not make a header.
  EXPECT_EQ(parse("1,2,x\n3,4,y\n").n, 2);
  EXPECT_EQ(parse("1,2,x\n3,4,y\n").feature_names, (Strings{"x0", "x1"}));
  // A nan in the first row is a bad number, not a header name.
  expect_error([] { parse("nan,1\n2,3\n"); }, ErrorCode::kFormat, {"t.csv:1:1", "finite"});
  // Forced either way.
  CsvOptions yes;
  yes.header = HeaderMode::kYes;
  Dataset numeric_header = parse("1,2,3\n4,5,6\n", yes);
  EXPECT_EQ(numeric_header.n, 1);
  EXPECT_EQ(numeric_header.feature_names, (Strings{"1", "2"}));
  EXPECT_EQ(numeric_header.label_columns, (Strings{"3"}));
  CsvOptions no;
  no.header = HeaderMode::kNo;
  expect_error([&] { parse("a,b,label\n1,2,x\n", no); }, ErrorCode::kFormat,
               {"t.csv:1:1: expected a number, found 'a'"});
}

TEST(ParseCsv, HandlesQuotesCrlfBomAndBlankLines) {
  std::string text =
      "\xEF\xBB\xBF"
      "\"f,1\",\"f \"\"2\"\"\",label\r\n"
      "\r\n"
      "  \"1.5\" ,2,\"multi\r\nline\"\r\n"
      "   \t\n"
      "\"-3\",\" 4 \",\"a,b\"\n"
      "\n"
      "5,6,\"\"\"q\"\"\"";  // no final newline
  Dataset ds = parse(text);
  EXPECT_EQ(ds.feature_names, (Strings{"f,1", "f \"2\""}));
  EXPECT_EQ(ds.n, 3);
  EXPECT_EQ(ds.x_f32, (Floats{1.5f, 2, -3, 4, 5, 6}));
  EXPECT_EQ(ds.class_names, (Strings{"\"q\"", "a,b", "multi\r\nline"}));
  EXPECT_EQ(ds.labels, (Labels{2, 1, 0}));
}

TEST(ParseCsv, CountsLinesAcrossQuotedLineBreaks) {
  expect_error([] { parse("a,label\n1,\"x\ny\"\nabc,z\n"); }, ErrorCode::kFormat,
               {"t.csv:4:1 (column 'a'): expected a number, found 'abc'"});
  expect_error([] { parse("a,b\r\n\r\n1,\"2\r\n\r\n\",3\r\n"); }, ErrorCode::kFormat,
               {"t.csv:3: expected 2 fields (as on line 1), found 3"});
}

TEST(ParseCsv, AcceptsTheNumberGrammar) {
  Dataset ds = parse(
      "+1, -2 ,\t3.25\t,.5,5.,1e3,1E-3,+.5,-0,00012,1e-50,3.4028235e38,x\n"
      "0,0,0,0,0,0,0,0,0,0,0,0,y\n");
  Floats want = {1, -2, 3.25f, 0.5f, 5, 1000, 0.001f, 0.5f, -0.0f, 12, 0, 3.4028235e38f};
  ASSERT_EQ(ds.n_features, 12);
  for (std::size_t j = 0; j < want.size(); ++j) {
    EXPECT_EQ(std::bit_cast<std::uint32_t>(ds.x_f32[j]), std::bit_cast<std::uint32_t>(want[j]))
        << "column " << j << ": " << ds.x_f32[j];
  }
}

// Random finite floats written with max_digits10 (9) significant digits, 10 to a row, in the C
// locale: text that must parse back to the same bits.
struct FloatText {
  std::vector<float> values;
  std::string text;
};

FloatText random_float_csv(std::uint32_t seed, int rows) {
  std::mt19937 rng(seed);
  FloatText out;
  char buf[64];
  for (int i = 0; i < rows; ++i) {
    for (int j = 0; j < 10; ++j) {
      // Random bit patterns cover every exponent, subnormals included.
      float v;
      do {
        v = std::bit_cast<float>(static_cast<std::uint32_t>(rng()));
      } while (!std::isfinite(v));
      out.values.push_back(v);
      std::snprintf(buf, sizeof buf, "%.9g,", static_cast<double>(v));
      out.text += buf;
    }
    out.text += "c\n";
  }
  return out;
}

void expect_same_bits(const std::vector<float>& got, const std::vector<float>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    ASSERT_EQ(std::bit_cast<std::uint32_t>(got[i]), std::bit_cast<std::uint32_t>(want[i])) << i;
  }
}

TEST(ParseCsv, RoundTripsFloatsBitForBit) {
  FloatText ft = random_float_csv(7, 100000);  // a million values
  expect_same_bits(parse(ft.text).x_f32, ft.values);
}

TEST(ParseCsv, GivesTheSameResultsUnderADecimalCommaLocale) {
  std::string text = "a,b,label\n0.5,1.25,x\n-3.5e2,7,y\n";
  FloatText ft = random_float_csv(8, 10000);  // written before the locale changes
  const char* names[] = {"de_DE.UTF-8", "de_DE.utf8", "de_DE", "nb_NO.UTF-8"};
  const char* found = nullptr;
  for (const char* n : names) {
    if (std::setlocale(LC_ALL, n) != nullptr) {
      found = n;
      break;
    }
  }
  if (found == nullptr) GTEST_SKIP() << "no decimal-comma locale installed";
  // strtod would now read "0.5" as 0: the trap this test guards against.
  EXPECT_EQ(std::localeconv()->decimal_point[0], ',');
  std::locale old = std::locale::global(std::locale(found));
  Dataset small = parse(text);
  Dataset big = parse(ft.text);
  std::locale::global(old);
  std::setlocale(LC_ALL, "C");
  EXPECT_EQ(small.x_f32, (Floats{0.5f, 1.25f, -350, 7}));
  expect_same_bits(big.x_f32, ft.values);
}

TEST(ParseCsv, ReadsSeveralRegressionTargets) {
  Dataset ds = parse("x1,y1,x2,y2\n1,10,2,20\n3,30,4,40\n", regress({"y1", "-1"}));
  EXPECT_EQ(ds.task, Task::kRegress);
  EXPECT_EQ(ds.feature_names, (Strings{"x1", "x2"}));
  EXPECT_EQ(ds.label_columns, (Strings{"y1", "y2"}));
  EXPECT_EQ(ds.x_f32, (Floats{1, 2, 3, 4}));
  EXPECT_EQ(ds.targets, (Floats{10, 20, 30, 40}));
  EXPECT_EQ(ds.n_targets(), 2);
  EXPECT_EQ(ds.n_outputs(), 2);
  EXPECT_TRUE(ds.labels.empty());
  EXPECT_TRUE(ds.class_names.empty());
  expect_error([] { parse("1,2\n3,x\n", regress({})); }, ErrorCode::kFormat,
               {"t.csv:2:2: expected a number (regression target), found 'x'"});
}

TEST(ParseCsv, SelectsTheLabelByNameIndexOrNegativeIndex) {
  std::string text = "id,label,f\n1,a,0.5\n2,b,1.5\n";
  for (std::string spec : {"label", "1", "-2"}) {
    CsvOptions o;
    o.label_columns = {spec};
    Dataset ds = parse(text, o);
    EXPECT_EQ(ds.label_columns, (Strings{"label"})) << spec;
    EXPECT_EQ(ds.feature_names, (Strings{"id", "f"})) << spec;
    EXPECT_EQ(ds.x_f32, (Floats{1, 0.5f, 2, 1.5f})) << spec;
    EXPECT_EQ(ds.class_names, (Strings{"a", "b"})) << spec;
  }
  CsvOptions first;
  first.label_columns = {"0"};
  Dataset ds = parse("3,0.5,0.25\n1,1.5,0.75\n", first);
  EXPECT_EQ(ds.label_columns, (Strings{"column 0"}));
  EXPECT_EQ(ds.feature_names, (Strings{"x0", "x1"}));
  EXPECT_EQ(ds.class_names, (Strings{"1", "3"}));
}

TEST(ParseCsv, ANamedLabelForcesAHeader) {
  // Without the name the all-numeric first row would be data.
  CsvOptions o;
  o.label_columns = {"2"};
  EXPECT_EQ(parse("0,1,2\n3,4,5\n", o).n, 2);
  o.task = Task::kRegress;
  o.label_columns = {"y"};
  Dataset ds = parse("x,y\n3,4\n", o);
  EXPECT_EQ(ds.n, 1);
  EXPECT_EQ(ds.targets, (Floats{4}));
  o.header = HeaderMode::kNo;
  expect_error([&] { parse("x,y\n3,4\n", o); }, ErrorCode::kUsage,
               {"t.csv", "'y' is a name", "without a header"});
}

TEST(ParseCsv, TakesTheModelsFeaturesByNameIgnoringOtherColumns) {
  CsvOptions o;
  o.feature_names = {"b", "a"};
  o.label_columns = {"y"};
  o.class_names = {"cat", "dog"};
  Dataset ds = parse("id,a,note,b,y\n7,1,hello,2,dog\n8,3,\"x,y\",4,cat\n", o);
  EXPECT_EQ(ds.feature_names, (Strings{"b", "a"}));
  EXPECT_EQ(ds.x_f32, (Floats{2, 1, 4, 3}));
  EXPECT_EQ(ds.class_names, (Strings{"cat", "dog"}));
  EXPECT_EQ(ds.labels, (Labels{1, 0}));
  // predict: no labels needed, the label column is just another ignored column.
  o.labels_required = false;
  Dataset p = parse("id,a,note,b,y\n7,1,hello,2,dog\n", o);
  EXPECT_EQ(p.x_f32, (Floats{2, 1}));
  EXPECT_FALSE(p.has_labels());
  EXPECT_TRUE(p.label_columns.empty());
  // Without a header the columns are positional and their count must match.
  CsvOptions no_header;
  no_header.header = HeaderMode::kNo;
  no_header.feature_names = {"b", "a"};
  Dataset q = parse("1,2,x\n3,4,y\n", no_header);
  EXPECT_EQ(q.feature_names, (Strings{"b", "a"}));
  EXPECT_EQ(q.x_f32, (Floats{1, 2, 3, 4}));
  EXPECT_EQ(q.label_columns, (Strings{"column 2"}));
  expect_error([&] { parse("1,2,3,x\n", no_header); }, ErrorCode::kData,
               {"t.csv:1", "expected 3 columns (2 features the model takes + 1 label)", "found 4"});
  no_header.labels_required = false;
  EXPECT_EQ(parse("1,2\n", no_header).x_f32, (Floats{1, 2}));
  expect_error([&] { parse("1,2,3\n", no_header); }, ErrorCode::kData,
               {"expected 2 columns (2 features the model takes)", "found 3"});
  CsvOptions missing;
  missing.feature_names = {"a", "zz"};
  expect_error([&] { parse("a,b,y\n1,2,x\n", missing); }, ErrorCode::kData,
               {"t.csv", "no column named 'zz'"});
}

TEST(ParseCsv, ReadsPredictInputWithoutLabels) {
  CsvOptions o;
  o.labels_required = false;
  o.label_columns = {"5"};  // ignored
  Dataset ds = parse("a,b\n1,2\n3,4\n", o);
  EXPECT_EQ(ds.n_features, 2);
  EXPECT_EQ(ds.feature_names, (Strings{"a", "b"}));
  EXPECT_FALSE(ds.has_labels());
}

TEST(ParseCsv, ReadsFromAFile) {
  TempDir dir;
  std::string path = dir / "t.csv";
  std::ofstream(path) << "a,label\n1,x\n2,y\n";
  Dataset ds = load_csv(path, {}, {});
  EXPECT_EQ(ds.source, path);
  EXPECT_EQ(ds.n, 2);
  std::filesystem::remove(path);
  expect_error([&] { load_csv(path, {}, {}); }, ErrorCode::kIo, {path, "open"});
  expect_error([&] { load_csv(dir.path(), {}, {}); }, ErrorCode::kIo, {"directory"});
}

struct BadCase {
  std::string what;
  std::string text;
  CsvOptions options;
  ErrorCode code;
  std::vector<std::string> parts;
  ReadLimits limits = {};
};

CsvOptions with_labels(Strings cols) {
  CsvOptions o;
  o.label_columns = std::move(cols);
  return o;
}

CsvOptions with_classes(Strings names) {
  CsvOptions o;
  o.class_names = std::move(names);
  return o;
}

CsvOptions with_min_rows(Index n) {
  CsvOptions o;
  o.min_rows = n;
  return o;
}

ReadLimits max_line(std::uint64_t n) {
  ReadLimits l;
  l.max_line_bytes = n;
  return l;
}

ReadLimits max_classes(std::uint64_t n) {
  ReadLimits l;
  l.max_classes = n;
  return l;
}

const std::string kHead = "a,b,label\n1,2,x\n";

std::vector<BadCase> bad_cases() {
  std::vector<BadCase> c;
  auto add = [&](std::string what, std::string text, ErrorCode code, Strings parts,
                 CsvOptions o = {}, ReadLimits l = {}) {
    c.push_back({std::move(what), std::move(text), std::move(o), code, std::move(parts), l});
  };
  const ErrorCode kF = ErrorCode::kFormat, kD = ErrorCode::kData;
  add("empty file", "", kF, {"t.csv", "empty file"});
  add("only blank lines", "\xEF\xBB\xBF\n\r\n  \n", kF, {"t.csv", "empty file"});
  add("header only", "a,b,label\n", kD, {"t.csv", "no data rows"});
  add("single row, min_rows 2", kHead, kD, {"t.csv", "at least 2 data rows, found 1"},
      with_min_rows(2));
  add("ragged: more fields", kHead + "3,4,y,5\n", kF,
      {"t.csv:3: expected 3 fields (as on line 1), found 4"});
  add("ragged: fewer fields", kHead + "\n3,y\n", kF,
      {"t.csv:4: expected 3 fields (as on line 1), found 2"});
  add("trailing delimiter", kHead + "3,4,y,\n", kF, {"t.csv:3", "found 4"});
  // A decimal comma splits a field in two: in a file of comma-separated values that is an extra
  // column, caught as a ragged row...
  add("decimal comma", "a,b,label\n0.5,1,x\n0,5,1,y\n", kF,
      {"t.csv:3: expected 3 fields (as on line 1), found 4"});
  // ...and in a semicolon-separated file the field holds a ';', which is not a number.
  add("semicolon file", "0,5;1,5;x\n0,5;2,5;y\n", kF,
      {"t.csv:1:2: expected a number, found '5;1'"});
  add("abc", kHead + "abc,4,y\n", kF, {"t.csv:3:1 (column 'a'): expected a number, found 'abc'"});
  add("1.2.3", kHead + "1,1.2.3,y\n", kF, {"t.csv:3:2 (column 'b')", "found '1.2.3'"});
  add("--1", kHead + "--1,4,y\n", kF, {"t.csv:3:1", "found '--1'"});
  add("+-1", kHead + "+-1,4,y\n", kF, {"t.csv:3:1", "found '+-1'"});
  add("lone +", kHead + "+,4,y\n", kF, {"t.csv:3:1", "found '+'"});
  add("lone .", kHead + ".,4,y\n", kF, {"t.csv:3:1", "found '.'"});
  add("1e", kHead + "1e,4,y\n", kF, {"t.csv:3:1", "found '1e'"});
  add("1e+", kHead + "1e+,4,y\n", kF, {"t.csv:3:1", "found '1e+'"});
  add("hex float", kHead + "0x1p3,4,y\n", kF, {"t.csv:3:1", "found '0x1p3'"});
  add("inner space", kHead + "1 2,4,y\n", kF, {"t.csv:3:1", "found '1 2'"});
  add("empty cell", kHead + ",4,y\n", kF, {"t.csv:3:1 (column 'a')", "found an empty field"});
  add("blank cell", kHead + "1,  ,y\n", kF, {"t.csv:3:2", "found an empty field"});
  add("nan", kHead + "nan,4,y\n", kF, {"t.csv:3:1", "(finite)", "found 'nan'"});
  add("NaN", kHead + "1,NaN,y\n", kF, {"t.csv:3:2", "(finite)", "found 'NaN'"});
  add("inf", kHead + "inf,4,y\n", kF, {"t.csv:3:1", "(finite)", "found 'inf'"});
  add("-inf", kHead + "-inf,4,y\n", kF, {"t.csv:3:1", "(finite)", "found '-inf'"});
  add("infinity", kHead + "1,Infinity,y\n", kF, {"t.csv:3:2", "(finite)"});
  add("1e39", kHead + "1e39,4,y\n", kF, {"t.csv:3:1", "within float range", "found '1e39'"});
  add("1e999", kHead + "1,-1e999,y\n", kF, {"t.csv:3:2", "within float range", "'-1e999'"});
  add("just over FLT_MAX", kHead + "3.4028236e38,4,y\n", kF, {"t.csv:3:1", "float range"});
  add("empty label", kHead + "3,4,\n", kD,
      {"t.csv:3:3 (column 'label'): expected a class label, found an empty field"});
  add("empty quoted label", kHead + "3,4,\"\"\n", kD, {"t.csv:3:3", "class label"});
  add("unterminated quote", kHead + "3,4,\"abc\n5,6,x\n", kF,
      {"t.csv:3:3", "closing '\"'", "opened on line 3", "end of the file (line 5)"});
  add("stray quote", kHead + "3,4\"5,x\n", kF, {"t.csv:3:2 (column 'b')", "stray '\"'", "'4\"'"});
  add("text after closing quote", kHead + "3,\"4\"5,x\n", kF,
      {"t.csv:3:2", "after the closing '\"', found '5'"});
  add("NUL in a field", kHead + std::string("3,4\0,x\n", 7), kF, {"t.csv:3:2", "NUL byte"});
  add("NUL in quotes", kHead + std::string("3,4,\"a\0\"\n", 9), kF, {"t.csv:3:3", "NUL byte"});
  add("line over max_line_bytes", kHead + std::string(100, '1') + ",2,x\n", ErrorCode::kLimit,
      {"t.csv:3: expected a line of at most 64 bytes"}, {}, max_line(64));
  add("quoted row over max_line_bytes", kHead + "1,2,\"" + std::string(100, '\n') + "\"\n",
      ErrorCode::kLimit, {"t.csv:3: expected a line of at most 64 bytes"}, {}, max_line(64));
  add("invalid UTF-8 in header", "a,\xC3\x28,label\n1,2,x\n", kF,
      {"t.csv:1:2: expected a UTF-8 column name, found '\\xC3('"}, with_labels({"label"}));
  add("overlong UTF-8 in header", "a,\xC0\xAF,label\n1,2,x\n", kF,
      {"t.csv:1:2", "UTF-8 column name"}, with_labels({"label"}));
  add("invalid UTF-8 label", kHead + "1,2,\xFF\n", kF, {"t.csv:3:3", "UTF-8 class label"});
  add("duplicate header names", "a,b,a,label\n1,2,3,x\n", kF,
      {"t.csv:1:3", "duplicate column name 'a'", "also column 1"});
  add("unknown label name", kHead, kD, {"t.csv: no column named 'species' in the header"},
      with_labels({"species"}));
  add("label index out of range", kHead, kD,
      {"t.csv", "label column 3 is out of range", "3 columns"}, with_labels({"3"}));
  add("negative index out of range", kHead, kD, {"t.csv", "label column -4 is out of range"},
      with_labels({"-4"}));
  add("huge index", kHead, kD, {"t.csv", "out of range"}, with_labels({"99999999999999999999999"}));
  add("two labels to classify", kHead, ErrorCode::kUsage,
      {"t.csv", "exactly one label column, got 2"}, with_labels({"a", "b"}));
  add("the same target twice", kHead, ErrorCode::kUsage, {"t.csv", "already a label column"},
      regress({"b", "1"}));
  add("unseen class", kHead + "3,4,z\n", kD,
      {"t.csv:3:3 (column 'label'): class 'z' was not seen in training"}, with_classes({"x", "y"}));
  add("too many classes", kHead + "3,4,y\n5,6,z\n", ErrorCode::kLimit,
      {"t.csv:4:3", "over the limit of 2 distinct labels"}, {}, max_classes(2));
  add("only a label column", "label\nx\ny\n", kD, {"t.csv", "no feature columns"});
  add("gzip content", "\x1F\x8B\x08rest", kF, {"t.csv", "gzip data", "decompress"});
  add("cell echo stays one line", kHead + "\"a\nb\",4,y\n", kF, {"t.csv:3:1", "'a\\nb'"});
  return c;
}

TEST(ParseCsv, RejectsEveryBadFileNamingLineAndColumn) {
  for (const BadCase& c : bad_cases()) {
    SCOPED_TRACE(c.what);
    expect_error([&] { parse(c.text, c.options, c.limits); }, c.code, c.parts);
  }
}

// Scanning 1 KiB takes microseconds; scanning or copying the whole 256 MiB line would take about a
// tenth of a second or more.
constexpr double kFailFastSeconds = 0.05;

TEST(ParseCsv, ChecksTheLineLimitWithoutReadingTheWholeLine) {
  // 256 MiB on one line, a 1 KiB limit: the error comes from the first KiB.
  std::string huge(std::size_t{256} << 20, '7');
  auto start = std::chrono::steady_clock::now();
  expect_error([&] { parse(huge, {}, max_line(1024)); }, ErrorCode::kLimit,
               {"t.csv:1: expected a line of at most 1024 bytes"});
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(seconds, kFailFastSeconds);
}

TEST(ParseCsv, ReadsAWideFileRowByRow) {
  // 2000 x 785, the shape of an MNIST CSV: features land in one float array.
  std::string text;
  for (int i = 0; i < 2000; ++i) {
    text += std::to_string(i % 10);
    for (int j = 0; j < 784; ++j) text += "," + std::to_string((i + j) % 256);
    text += "\n";
  }
  CsvOptions o;
  o.label_columns = {"0"};
  Dataset ds = parse(text, o);
  EXPECT_EQ(ds.n, 2000);
  EXPECT_EQ(ds.n_features, 784);
  ASSERT_EQ(ds.x_f32.size(), 2000u * 784u);
  EXPECT_EQ(ds.x_f32[784 * 5 + 3], 8.0f);
  // The row-count guess keeps the array close to its final size.
  EXPECT_LE(ds.x_f32.capacity(), ds.x_f32.size() * 5 / 4);
  EXPECT_EQ(ds.class_names.size(), 10u);
  EXPECT_EQ(ds.labels[13], 3);
}

}  // namespace
}  // namespace backprop
