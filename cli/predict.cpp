// backprop predict: a saved model on unlabelled rows: the predicted class and every class
// probability, or the regression outputs, as CSV; or the outputs alone as a float32 .npy array.
#include <algorithm>
#include <cstdio>

#include "commands.hpp"
#include "common.hpp"

namespace backprop::cli {

namespace {

struct PredictFlags {
  std::string model, input, output, format = "csv";
  DataFlags data;
  int threads = 0;
};

// A CSV field, quoted when it holds a comma, quote or line break (RFC 4180).
std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) {
    if (c == '"') q += '"';
    q += c;
  }
  return q + "\"";
}

// Regression outputs in the targets' units (copied into `out` when the targets were standardised);
// class probabilities and unstandardised outputs as they are.
ConstMatrixView targets_of(ConstMatrixView a, const Preprocess& pre, Matrix& out) {
  if (!pre.standardizes_targets()) return a;
  if (out.rows() < a.rows || out.cols() != a.cols) out = Matrix(a.rows, a.cols);
  MatrixView o = out.view().rows_range(0, a.rows);
  for (Index i = 0; i < a.rows; ++i) std::copy(a.row(i), a.row(i) + a.cols, o.row(i));
  outputs_to_targets(pre, o);
  return o;
}

int run_predict(const PredictFlags& f) {
  check_output_path("--output", f.output, {f.input, f.model});
  set_num_threads(f.threads);
  ModelFile mf = load_model(f.model, f.data.limits());
  Dataset ds = load_predict_data(f.input, f.data, mf.info);
  Preprocess pre = model_preprocess(mf.info, ds);
  const bool classify = mf.info.task == Task::kClassify;
  const Index k = mf.model.n_outputs();

  constexpr Index kBatch = 1000;
  std::vector<Index> rows = all_rows(ds);
  Matrix x(std::min(kBatch, ds.n), ds.n_features), targets;
  if (f.format == "npy") {
    // n × outputs, float32: the class probabilities in the model's class order, or the targets.
    std::vector<float> values;
    values.reserve(static_cast<std::size_t>(ds.n * k));
    for (Index start = 0; start < ds.n; start += kBatch) {
      Index b = std::min(kBatch, ds.n - start);
      std::span<const Index> chunk(rows.data() + start, static_cast<std::size_t>(b));
      MatrixView xb = x.view().rows_range(0, b);
      gather_batch(ds, chunk, pre, xb, MatrixView());
      ConstMatrixView a = targets_of(mf.model.forward(xb), pre, targets);
      for (Index i = 0; i < b; ++i) values.insert(values.end(), a.row(i), a.row(i) + k);
    }
    std::vector<std::uint8_t> bytes =
        serialize_npy(values, {static_cast<std::uint64_t>(ds.n), static_cast<std::uint64_t>(k)});
    if (f.output.empty() || f.output == "-") {
      std::fwrite(bytes.data(), 1, bytes.size(), stdout);
      std::fflush(stdout);
    } else {
      write_file_atomic(f.output, bytes);
    }
    return 0;
  }

  std::string out;
  if (classify) {
    out += "predicted";
    for (const auto& c : mf.info.class_names) {
      out += ",p_";
      out += csv_field(c);
    }
  } else {
    for (std::size_t j = 0; j < mf.info.label_columns.size(); ++j) {
      if (j > 0) out += ',';
      out += csv_field(mf.info.label_columns[j]);
    }
  }
  out += "\n";
  for (Index start = 0; start < ds.n; start += kBatch) {
    Index b = std::min(kBatch, ds.n - start);
    std::span<const Index> chunk(rows.data() + start, static_cast<std::size_t>(b));
    MatrixView xb = x.view().rows_range(0, b);
    gather_batch(ds, chunk, pre, xb, MatrixView());
    ConstMatrixView a = targets_of(mf.model.forward(xb), pre, targets);
    for (Index i = 0; i < b; ++i) {
      const float* ai = a.row(i);
      if (classify) {
        Index best = std::max_element(ai, ai + k) - ai;
        out += csv_field(mf.info.class_names[static_cast<std::size_t>(best)]);
        for (Index j = 0; j < k; ++j) {
          out += ',';
          out += format_float(ai[j]);
        }
      } else {
        for (Index j = 0; j < k; ++j) {
          if (j > 0) out += ',';
          out += format_float(ai[j]);
        }
      }
      out += "\n";
    }
  }
  write_output(f.output, out);
  return 0;
}

}  // namespace

Run add_predict(CLI::App& app) {
  auto f = std::make_shared<PredictFlags>();
  CLI::App* cmd = app.add_subcommand("predict", "run a saved model on new data, write CSV or .npy");
  cmd->add_option("--model", f->model, "model file (safetensors)")->required();
  cmd->add_option("--input", f->input,
                  "IDX images, a .npy array or CSV rows (a label column is ignored when "
                  "the CSV has a header)")
      ->required();
  cmd->add_option("--output", f->output, "file to write (default: standard output)");
  cmd->add_option("--format", f->format,
                  "csv (predicted class and probabilities, or targets) or npy (a float32 array "
                  "of the outputs, examples × outputs) (default csv)")
      ->check(CLI::IsMember({"csv", "npy"}));
  auto* h = cmd->add_flag("--header", f->data.header, "CSV: the first row is a header");
  auto* nh = cmd->add_flag("--no-header", f->data.no_header, "CSV: the first row is data");
  h->excludes(nh);
  cmd->add_option("--max-input-bytes", f->data.max_input_bytes,
                  "refuse any input file that is, or decompresses to, more bytes")
      ->check(unsigned_range(1, std::uint64_t{1} << 50));
  cmd->add_option("--threads", f->threads, "kernel threads; 0 = every core")
      ->check(integer_range(0, 1024));
  return [f] { return run_predict(*f); };
}

}  // namespace backprop::cli
