// backprop._core: the library in process for Python (python/backprop/ wraps it in scikit-learn
// estimators). What crosses the boundary:
//   features  X: n × f, C-contiguous float32, float64 or uint8 (the Python layer converts every
//             other dtype and layout once); read in place: copied once into the Dataset the
//             training loop owns (float32: a checked memcpy), and not copied at all for outputs(),
//             which preprocesses rows straight from X into each batch.
//   labels    classify: int32 class indices 0..K−1 (n) with K class names; regress: float32
//             targets (n × k, C-contiguous).
//   outputs   float32 n × k, written by the library straight into the NumPy array returned.
// The GIL is released while data is converted, during training and during forward passes. While
// training, the batch callback takes the GIL at most every kSignalCheckSeconds to run Python's
// signal handlers (PyErr_CheckSignals): Ctrl-C then raises TrainOptions::stop, train() throws
// Error(kInterrupted), and the KeyboardInterrupt the handler raised is re-raised here.
// Errors: backprop::Error becomes ValueError (bad arrays and parameters), OSError (files: kIo, and
// any error reading or writing a model file), FloatingPointError (kNumeric: a diverged run) or
// KeyboardInterrupt, with the library's one-line message.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <sys/mman.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "backprop/backprop.hpp"
#include "backprop/model_file.hpp"
#include "backprop/version.hpp"
#include "kernels/kernels.hpp"

namespace py = pybind11;

namespace backprop::python {
namespace {

// How often training looks at Python's signal flags: Ctrl-C answers within this, and taking the
// GIL that rarely costs nothing measurable (a batch of 10 rows of 784-30-10 takes ~10 µs).
constexpr double kSignalCheckSeconds = 0.02;
// Rows per forward pass in outputs(), as backprop predict and evaluate() use.
constexpr Index kPredictBatch = 1000;

// An error reading or writing a model file: OSError in Python, whatever its ErrorCode.
struct FileError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A trained network with what its model file says, and, after partial_fit, what the next
// partial_fit continues from (the optimizer's state and the loop's RNG states and epoch count).
struct Net {
  ModelFile file;
  std::mutex mutex;  // forward() writes the model's workspace: one pass at a time
  std::unique_ptr<Optimizer> optimizer;
  std::optional<TrainState> state;
};

std::string shape_text(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) {
    if (i > 0) s += ", ";
    s += std::to_string(a.shape(i));
  }
  return s + (a.ndim() == 1 ? ",)" : ")");
}

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";  // capitalised as NumPy prints it (and scikit-learn matches)
  if (std::isinf(v)) return v < 0 ? "-inf" : "inf";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

// A 2-d C-contiguous array of one of `kinds` ("f4", "f8", "u1", "i4"); anything else is a
// ValueError naming the array (the Python layer converts before calling, so this is a guard).
void require_layout(const py::array& a, const std::string& name,
                    std::initializer_list<const char*> kinds) {
  if (a.ndim() != 2) {
    throw Error(ErrorCode::kData, name + ": expected a 2-d array, found shape " + shape_text(a));
  }
  if (!(a.flags() & py::array::c_style)) {
    throw Error(ErrorCode::kData, name + ": expected a C-contiguous array");
  }
  const std::string kind = std::string(1, a.dtype().kind()) + std::to_string(a.dtype().itemsize());
  const char* map[][2] = {{"f4", "f4"}, {"f8", "f8"}, {"u1", "u1"}, {"i4", "i4"}};
  bool ok = false;
  for (const char* k : kinds) {
    for (auto& m : map) ok = ok || (kind == m[0] && std::strcmp(k, m[1]) == 0);
  }
  if (!ok || a.dtype().byteorder() == '>') {
    throw Error(ErrorCode::kData, name + ": unsupported dtype " +
                                      py::str(a.dtype()).cast<std::string>() +
                                      " for this argument (native float32, float64 or uint8)");
  }
}

// Element (row, column) of an n × f array in messages, as the .npy loader names a byte.
std::string at(const std::string& name, Index i, Index f) {
  return name + ": row " + std::to_string(i / f) + ", column " + std::to_string(i % f);
}

// The copy of X into the Dataset is the one copy training makes; its first touch of each page
// is a page fault, which on a virtual machine costs tens of microseconds (measured: 0.5 s for
// Fashion-MNIST's 47 MB in 4 KiB pages). Transparent huge pages make that 2 MiB per fault. A hint
// only (the kernel may say no, or be set to "never").
void ask_for_huge_pages(void* p, std::size_t bytes) {
  constexpr std::uintptr_t kHuge = std::uintptr_t{2} << 20;
  const auto begin = (reinterpret_cast<std::uintptr_t>(p) + kHuge - 1) & ~(kHuge - 1);
  const auto end = (reinterpret_cast<std::uintptr_t>(p) + bytes) & ~(kHuge - 1);
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
}

// Features into ds, as load_npy reads them: uint8 kept as bytes (scaled by 1/255 like IDX
// images), float32 and float64 to float, each value finite and within float range. Called with
// the GIL released: only the array's memory is read.
void fill_features(Dataset& ds, const void* data, char kind, std::size_t itemsize, Index n, Index f,
                   const std::string& name) {
  ds.n = n;
  ds.n_features = f;
  const auto count = static_cast<std::size_t>(n * f);
  if (kind == 'u') {
    const auto* p = static_cast<const std::uint8_t*>(data);
    ds.x_u8.reserve(count);
    ask_for_huge_pages(ds.x_u8.data(), count);
    ds.x_u8.assign(p, p + count);
    ds.value_scale = 1.0f / 255.0f;
    return;
  }
  ds.x_f32.reserve(count);
  ask_for_huge_pages(ds.x_f32.data(), count * sizeof(float));
  ds.x_f32.resize(count);
  float* out = ds.x_f32.data();
  auto bad = [&](std::size_t i, double v) {
    throw Error(ErrorCode::kData, at(name, static_cast<Index>(i), f) +
                                      ": expected a finite value within float range, found " +
                                      format_value(v));
  };
  if (itemsize == 4) {
    std::memcpy(out, data, count * sizeof(float));
    for (std::size_t i = 0; i < count; ++i) {
      if (!std::isfinite(out[i])) bad(i, out[i]);
    }
  } else {
    constexpr double kFloatMax = std::numeric_limits<float>::max();
    const auto* p = static_cast<const double*>(data);
    for (std::size_t i = 0; i < count; ++i) {
      if (!std::isfinite(p[i]) || std::fabs(p[i]) > kFloatMax) bad(i, p[i]);
      out[i] = static_cast<float>(p[i]);
    }
  }
}

// The training data: X (n × f), and y as class indices (int32 n × 1) with class names, or as
// float32 targets (n × k). Feature names name the columns ("x0"... when the caller has none).
struct DataIn {
  py::array x, y;
  Task task = Task::kClassify;
  std::vector<std::string> class_names, feature_names;
};

Dataset make_dataset(const DataIn& in) {
  require_layout(in.x, "X", {"f4", "f8", "u1"});
  const Index n = in.x.shape(0), f = in.x.shape(1);
  if (n == 0 || f == 0) {
    throw Error(ErrorCode::kData, "X: shape " + shape_text(in.x) +
                                      " holds no values: expected at least one example of at "
                                      "least one feature");
  }
  if (static_cast<Index>(in.feature_names.size()) != f) {
    throw Error(ErrorCode::kData, "X has " + std::to_string(f) + " columns, but " +
                                      std::to_string(in.feature_names.size()) +
                                      " feature names were given");
  }
  if (in.y.shape(0) != n) {
    throw Error(ErrorCode::kData, "y: holds " + std::to_string(in.y.shape(0)) +
                                      " labels, but X holds " + std::to_string(n) + " examples");
  }
  Dataset ds;
  ds.source = "X";
  ds.format = DataFormat::kMemory;
  ds.task = in.task;
  ds.feature_names = in.feature_names;
  ds.sample_shape = {f};
  const char kind = in.x.dtype().kind();
  const auto itemsize = static_cast<std::size_t>(in.x.dtype().itemsize());
  const void* xdata = in.x.data();
  const void* ydata = in.y.data();
  if (in.task == Task::kClassify) {
    require_layout(in.y, "y", {"i4"});
    const Index k = static_cast<Index>(in.class_names.size());
    if (in.y.shape(1) != 1) throw Error(ErrorCode::kData, "y: expected one label per row");
    py::gil_scoped_release release;
    fill_features(ds, xdata, kind, itemsize, n, f, "X");
    const auto* labels = static_cast<const std::int32_t*>(ydata);
    ds.labels.assign(labels, labels + n);
    for (Index i = 0; i < n; ++i) {
      if (labels[i] < 0 || labels[i] >= k) {
        throw Error(ErrorCode::kData, "y: row " + std::to_string(i) + ": class index " +
                                          std::to_string(labels[i]) + " is not among the " +
                                          std::to_string(k) + " classes");
      }
    }
    ds.class_names = in.class_names;
    ds.label_columns = {"label"};
  } else {
    require_layout(in.y, "y", {"f4"});
    const Index k = in.y.shape(1);
    if (k == 0) throw Error(ErrorCode::kData, "y: shape " + shape_text(in.y) + " holds no targets");
    py::gil_scoped_release release;
    fill_features(ds, xdata, kind, itemsize, n, f, "X");
    const auto* t = static_cast<const float*>(ydata);
    ds.targets.assign(t, t + n * k);
    for (std::size_t i = 0; i < ds.targets.size(); ++i) {
      if (!std::isfinite(ds.targets[i])) {
        throw Error(ErrorCode::kData, at("y", static_cast<Index>(i), k) +
                                          ": expected a finite target within float range, found " +
                                          format_value(ds.targets[i]));
      }
    }
    for (Index j = 0; j < k; ++j) ds.label_columns.push_back("y" + std::to_string(j));
  }
  return ds;
}

// The training settings: the library's FitConfig (what the CLI fills from its flags), named in
// messages by the estimators' parameters. python/backprop/_estimators.py sends every key.
struct Settings {
  FitConfig config;
  std::vector<Index> sample_shape;  // of one example, as given (images: 28 × 28)
};

template <class T>
T get(const py::dict& d, const char* key) {
  if (!d.contains(key)) throw Error(ErrorCode::kUsage, std::string("missing setting ") + key);
  try {
    return d[key].cast<T>();
  } catch (const py::cast_error&) {
    throw Error(ErrorCode::kUsage, std::string(key) + ": " + py::repr(d[key]).cast<std::string>() +
                                       " has the wrong type");
  }
}

template <class T>
std::optional<T> get_optional(const py::dict& d, const char* key) {
  if (!d.contains(key) || d[key].is_none()) return std::nullopt;
  return get<T>(d, key);
}

Settings parse_settings(const py::dict& d) {
  Settings s;
  FitConfig& c = s.config;
  c.names.hidden = "hidden_layer_sizes";
  c.names.val_split = "validation_fraction";
  c.hidden = get<std::vector<Index>>(d, "hidden");
  c.activation = get<std::string>(d, "activation");
  c.output = get<std::string>(d, "output");
  c.loss = get<std::string>(d, "loss");
  c.init = get<std::string>(d, "init");
  c.leaky_slope = get<double>(d, "leaky_slope");
  OptimizerConfig& oc = c.optimizer;
  oc.kind = get<std::string>(d, "optimizer");
  oc.lr = get_optional<double>(d, "lr");
  oc.momentum = get<double>(d, "momentum");
  oc.beta1 = get<double>(d, "beta1");
  oc.beta2 = get<double>(d, "beta2");
  oc.eps = get<double>(d, "eps");
  oc.weight_decay = get_optional<double>(d, "weight_decay");
  TrainOptions& o = c.train;
  o.epochs = get<int>(d, "epochs");
  o.batch_size = get<Index>(d, "batch_size");
  o.seed = get<std::uint64_t>(d, "seed");
  o.schedule.kind = parse_schedule(get<std::string>(d, "schedule"));
  o.schedule.warmup = get<int>(d, "warmup");
  o.schedule.step = get<int>(d, "lr_step");
  // γ's default depends on the schedule, as the CLI's: 0.1 per step, 0.95 for exponential.
  o.schedule.gamma = get_optional<double>(d, "lr_gamma")
                         .value_or(o.schedule.kind == ScheduleKind::kExponential ? 0.95 : 0.1);
  o.schedule.min_lr = get<double>(d, "lr_min");
  o.schedule.plateau_patience = get<int>(d, "plateau_patience");
  o.schedule.plateau_factor = get<double>(d, "plateau_factor");
  o.dropout = get<std::vector<double>>(d, "dropout");
  o.clip_norm = get<double>(d, "clip_norm");
  o.label_smoothing = get<double>(d, "label_smoothing");
  o.patience = get<int>(d, "patience");
  o.on_nonfinite = get<std::string>(d, "on_nonfinite") == "skip-batch" ? NonFinitePolicy::kSkipBatch
                                                                       : NonFinitePolicy::kStop;
  c.val_split = get<double>(d, "val_split");
  c.standardize = get<bool>(d, "standardize") ? 1 : 0;
  c.standardize_targets = get<bool>(d, "standardize_targets");
  s.sample_shape = get<std::vector<Index>>(d, "sample_shape");
  set_num_threads(get<int>(d, "threads"));
  return s;
}

py::dict metrics_dict(const std::string& prefix, const Metrics& m, Task task) {
  py::dict d;
  if (m.n == 0) return d;
  d[(prefix + "_loss").c_str()] = m.loss;
  d[(prefix + (task == Task::kClassify ? "_accuracy" : "_rmse")).c_str()] =
      task == Task::kClassify ? m.accuracy : m.rmse;
  return d;
}

// One entry of history_: the keys of the CLI's --log lines.
py::list history_list(const std::vector<EpochStats>& history, Task task) {
  py::list out;
  for (const EpochStats& s : history) {
    py::dict d;
    d["epoch"] = s.epoch;
    for (const char* p : {"train", "val"}) {
      const Metrics& m = std::strcmp(p, "train") == 0 ? s.train : s.val;
      for (auto item : metrics_dict(p, m, task)) d[item.first] = item.second;
    }
    d["learning_rate"] = s.learning_rate;
    d["seconds"] = s.seconds;
    d["samples_per_second"] = s.samples_per_second;
    d["grad_norm"] = s.grad_norm;
    py::list layers;
    for (std::size_t l = 0; l < s.layers.size(); ++l) {
      const LayerHealth& h = s.layers[l];
      py::dict ld;
      ld["layer"] = l + 1;
      ld["weight_norm"] = h.weight_norm;
      ld["grad_norm"] = h.grad_norm;
      if (!std::isnan(h.saturated)) ld["saturated"] = h.saturated;
      if (!std::isnan(h.dead)) ld["dead"] = h.dead;
      layers.append(ld);
    }
    d["layers"] = layers;
    if (s.skipped_batches > 0) d["skipped_batches"] = s.skipped_batches;
    if (s.best) d["best"] = true;
    out.append(d);
  }
  return out;
}

// Runs run(options, callbacks) (train() or a caller of it) with the GIL released, answering
// Ctrl-C: on_batch takes the GIL at most every kSignalCheckSeconds and runs Python's signal
// handlers; an exception they raise (KeyboardInterrupt) raises TrainOptions::stop, and is
// re-raised here once the loop has unwound.
template <class Run>
auto releasing_gil(TrainOptions& options, TrainCallbacks& callbacks, Run&& run) {
  std::atomic<bool> stop{false};
  options.stop = &stop;
  std::optional<py::error_already_set> raised;
  auto last = std::chrono::steady_clock::now();
  callbacks.on_batch = [&](const Progress&) {
    const auto now = std::chrono::steady_clock::now();
    if (std::chrono::duration<double>(now - last).count() < kSignalCheckSeconds) return;
    last = now;
    py::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() != 0) {
      raised.emplace();  // takes the pending exception
      stop.store(true);
    }
  };
  try {
    py::gil_scoped_release release;
    auto result = run(options, callbacks);
    if (!raised) return result;
  } catch (const Error&) {
    if (!raised) throw;
  }
  // Asked to stop (also when the run ended anyway, during its last batch: it is not the user's).
  throw *raised;
}

std::vector<EpochStats> train_releasing_gil(Model& model, Optimizer& optimizer,
                                            const TrainData& data, TrainOptions options,
                                            TrainCallbacks callbacks, const TrainState* resume) {
  return releasing_gil(options, callbacks, [&](const TrainOptions& o, const TrainCallbacks& cb) {
    return train(model, optimizer, data, o, cb, resume);
  });
}

// fit: a new network trained on the data, as `backprop train` trains it (backprop::fit, the
// CLI's path).
py::tuple fit(const py::array& x, const py::array& y, bool classify,
              const std::vector<std::string>& class_names,
              const std::vector<std::string>& feature_names, const py::dict& settings) {
  Settings s = parse_settings(settings);
  const Task task = classify ? Task::kClassify : Task::kRegress;
  check_fit_config(s.config, task);
  Dataset ds = make_dataset({x, y, task, class_names, feature_names});
  ds.sample_shape = s.sample_shape;
  TrainCallbacks callbacks;
  FitResult r = releasing_gil(s.config.train, callbacks,
                              [&](const TrainOptions& options, const TrainCallbacks& cb) {
                                FitConfig config = s.config;
                                config.train = options;
                                return backprop::fit(ds, config, nullptr, cb);
                              });
  auto net = std::make_shared<Net>();
  net->file.model = std::move(r.model);
  net->file.info = std::move(r.info);
  return py::make_tuple(net, history_list(r.history, ds.task));
}

// partial_fit: one more epoch over this data, continuing the network, the optimizer's state and
// the loop's random streams of the previous call. The first call makes the network (and decides
// the preprocessing from its rows); a network from fit() or a file starts a new optimizer.
py::tuple partial_fit(std::shared_ptr<Net> net, const py::array& x, const py::array& y,
                      bool classify, const std::vector<std::string>& class_names,
                      const std::vector<std::string>& feature_names, const py::dict& settings) {
  Settings s = parse_settings(settings);
  const FitConfig& c = s.config;
  const Task task = classify ? Task::kClassify : Task::kRegress;
  check_fit_config(c, task);
  Dataset ds = make_dataset({x, y, task, class_names, feature_names});
  ds.sample_shape = s.sample_shape;
  TrainData data;
  data.data = &ds;
  data.train_rows = all_rows(ds);
  if (net == nullptr) {  // the steps of backprop::fit, without the split (no validation here)
    net = std::make_shared<Net>();
    const ModelSpec spec = fit_spec(c, ds);
    const Init init = fit_init(c, spec.hidden);
    net->file.model = Model(spec);
    net->file.model.init(init, c.train.seed);
    net->file.info = fit_info(c, ds, std::string(to_string(init)));
    net->file.info.preprocess = fit_preprocess(c, ds, data.train_rows);
  }
  // Wait for another thread's pass over this network without holding the GIL it may need.
  std::unique_lock<std::mutex> lock(net->mutex, std::defer_lock);
  {
    py::gil_scoped_release release;
    lock.lock();
  }
  if (net->optimizer == nullptr) net->optimizer = make_optimizer(c.optimizer);
  data.pre = net->file.info.preprocess;
  if (data.pre.shift.empty()) data.pre = scale_preprocess(ds);
  TrainOptions options = s.config.train;
  TrainState resume;
  const TrainState* from = nullptr;
  if (net->state) {
    resume = *net->state;
    // The next epoch shuffles the last epoch's order again, as fit() does; rows of another
    // count start from their own order (the carried stream shuffles them all the same).
    if (static_cast<Index>(resume.order.size()) != ds.n) resume.order.clear();
    resume.batch = 0;
    from = &resume;
  }
  options.epochs = (from != nullptr ? resume.epoch : 0) + 1;
  options.patience = 0;
  TrainCallbacks callbacks;
  TrainState after;
  callbacks.checkpoint = [&](const Model&, const Optimizer&, const TrainState& st) {
    after = st;
    return std::string();
  };
  std::vector<EpochStats> history =
      train_releasing_gil(net->file.model, *net->optimizer, data, options, callbacks, from);
  net->file.info.data_hash = data_hash(ds);
  net->file.info.train_examples += ds.n;
  net->state = std::move(after);
  return py::make_tuple(net, history_list(history, ds.task));
}

// The network's outputs for X (n × f, C-contiguous float32, float64 or uint8): class
// probabilities or regression outputs (in the targets' units), float32, computed exactly as
// backprop predict computes them (the model's preprocessing, batches of kPredictBatch rows).
py::array_t<float> outputs(Net& net, const py::array& x, int threads) {
  require_layout(x, "X", {"f4", "f8", "u1"});
  const Model& m = net.file.model;
  const Index n = x.shape(0), f = x.shape(1), k = m.n_outputs();
  if (f != m.n_inputs()) {
    throw Error(ErrorCode::kData, "X has " + std::to_string(f) +
                                      " features, but the model expects " +
                                      std::to_string(m.n_inputs()));
  }
  py::array_t<float> out({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(k)});
  if (n == 0) return out;
  const char kind = x.dtype().kind();
  const auto itemsize = x.dtype().itemsize();
  const auto* xdata = static_cast<const std::uint8_t*>(x.data());
  float* odata = out.mutable_data();
  Preprocess pre = net.file.info.preprocess;
  if (pre.shift.empty()) {  // a file without preprocessing: the data's natural scale
    pre.shift.assign(static_cast<std::size_t>(f), 0.0f);
    pre.scale.assign(static_cast<std::size_t>(f), kind == 'u' ? 1.0f / 255.0f : 1.0f);
  }
  set_num_threads(threads);
  py::gil_scoped_release release;
  std::lock_guard<std::mutex> lock(net.mutex);
  const kernels::KernelTable& kt = kernels::active();
  Matrix xb(std::min(kPredictBatch, n), f);
  std::vector<float> row(static_cast<std::size_t>(f));
  for (Index start = 0; start < n; start += kPredictBatch) {
    const Index b = std::min(kPredictBatch, n - start);
    for (Index i = 0; i < b; ++i) {
      const std::uint8_t* src = xdata + (start + i) * f * itemsize;
      if (kind == 'u') {
        kt.scale_u8(src, pre.shift.data(), pre.scale.data(), xb.view().row(i), f);
      } else {
        // float32 read in place; float64 to float first, as the loaders store it. Each value
        // finite and within float range, as for training.
        const float* v = reinterpret_cast<const float*>(src);
        const auto* d = reinterpret_cast<const double*>(src);
        for (Index j = 0; j < f; ++j) {
          const double value = itemsize == 4 ? static_cast<double>(v[j]) : d[j];
          if (!std::isfinite(value) || std::fabs(value) > std::numeric_limits<float>::max()) {
            throw Error(ErrorCode::kData, at("X", (start + i) * f + j, f) +
                                              ": expected a finite value within float range, "
                                              "found " +
                                              format_value(value));
          }
          if (itemsize == 8) row[static_cast<std::size_t>(j)] = static_cast<float>(d[j]);
        }
        kt.scale_f32(itemsize == 4 ? v : row.data(), pre.shift.data(), pre.scale.data(),
                     xb.view().row(i), f);
      }
    }
    ConstMatrixView a = net.file.model.forward(xb.view().rows_range(0, b));
    for (Index i = 0; i < b; ++i) std::memcpy(odata + (start + i) * k, a.row(i), sizeof(float) * k);
    // Regression outputs in the targets' units when they were standardised, as predict does.
    if (pre.standardizes_targets()) outputs_to_targets(pre, MatrixView(odata + start * k, b, k));
  }
  return out;
}

std::shared_ptr<Net> net_from(ModelFile mf) {
  auto net = std::make_shared<Net>();
  net->file = std::move(mf);
  return net;
}

template <class F>
auto as_file_error(F&& f) {
  try {
    return f();
  } catch (const Error& e) {
    throw FileError(e.what());
  }
}

py::array_t<float> to_numpy(std::span<const float> v, std::vector<py::ssize_t> shape) {
  py::array_t<float> a(shape);
  std::memcpy(a.mutable_data(), v.data(), v.size() * sizeof(float));
  return a;
}

}  // namespace
}  // namespace backprop::python

PYBIND11_MODULE(_core, m) {
  using namespace backprop;
  using namespace backprop::python;
  m.doc() = "backprop's library in process (python/backprop wraps it in scikit-learn estimators)";

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const FileError& e) {
      PyErr_SetString(PyExc_OSError, e.what());
    } catch (const Error& e) {
      switch (e.code()) {
        case ErrorCode::kIo:
          PyErr_SetString(PyExc_OSError, e.what());
          break;
        case ErrorCode::kNumeric:
          PyErr_SetString(PyExc_FloatingPointError, e.what());
          break;
        case ErrorCode::kInterrupted:
          PyErr_SetString(PyExc_KeyboardInterrupt, e.what());
          break;
        default:
          PyErr_SetString(PyExc_ValueError, e.what());
      }
    }
  });

  m.def("version", [] { return std::string(backprop::version()); });
  m.def("kernels", [] { return std::string(kernels::active().name); });

  py::class_<Net, std::shared_ptr<Net>>(m, "Net")
      .def_static(
          "from_bytes",
          [](const py::bytes& b, const std::string& name) {
            std::string_view s = b;
            std::span<const std::uint8_t> bytes(reinterpret_cast<const std::uint8_t*>(s.data()),
                                                s.size());
            return net_from(parse_model(bytes, name, ReadLimits{}));
          },
          py::arg("data"), py::arg("name") = "model bytes")
      .def_static("load",
                  [](const std::string& path) {
                    return as_file_error([&] { return net_from(load_model(path)); });
                  })
      .def("to_bytes",
           [](const Net& n) {
             std::vector<std::uint8_t> b = serialize_model(n.file.model, n.file.info);
             return py::bytes(reinterpret_cast<const char*>(b.data()), b.size());
           })
      .def("save",
           [](const Net& n, const std::string& path) {
             as_file_error([&] {
               save_model(path, n.file.model, n.file.info);
               return 0;
             });
           })
      .def_property_readonly("layers", [](const Net& n) { return n.file.model.spec().layers; })
      .def_property_readonly(
          "activation",
          [](const Net& n) { return std::string(to_string(n.file.model.spec().hidden)); })
      .def_property_readonly(
          "output", [](const Net& n) { return std::string(to_string(n.file.model.spec().output)); })
      .def_property_readonly(
          "loss", [](const Net& n) { return std::string(to_string(n.file.model.spec().loss)); })
      .def_property_readonly("leaky_slope",
                             [](const Net& n) { return n.file.model.spec().leaky_slope; })
      .def_property_readonly("classify",
                             [](const Net& n) { return n.file.info.task == Task::kClassify; })
      .def_property_readonly("class_names", [](const Net& n) { return n.file.info.class_names; })
      .def_property_readonly("feature_names",
                             [](const Net& n) { return n.file.info.feature_names; })
      .def_property_readonly("seed", [](const Net& n) { return n.file.info.seed; })
      .def_property_readonly("init", [](const Net& n) { return n.file.info.init; })
      .def_property_readonly("data_hash", [](const Net& n) { return n.file.info.data_hash; })
      .def_property_readonly("train_examples",
                             [](const Net& n) { return n.file.info.train_examples; })
      .def_property_readonly("version", [](const Net& n) { return n.file.info.version; })
      .def_property_readonly("partial", [](const Net& n) { return n.state.has_value(); })
      .def("weights",
           [](const Net& n) {
             // (weight out×in, bias out) per layer, copies.
             py::list out;
             const Model& model = n.file.model;
             for (Index l = 0; l < model.n_layers(); ++l) {
               ConstMatrixView w = model.weight(l);
               std::span<const float> b = model.bias(l);
               out.append(py::make_tuple(
                   to_numpy({w.data, static_cast<std::size_t>(w.rows * w.cols)}, {w.rows, w.cols}),
                   to_numpy(b, {static_cast<py::ssize_t>(b.size())})));
             }
             return out;
           })
      .def("outputs", &outputs, py::arg("X"), py::arg("threads") = 0);

  m.def("fit", &backprop::python::fit, py::arg("X"), py::arg("y"), py::arg("classify"),
        py::arg("class_names"), py::arg("feature_names"), py::arg("settings"));
  m.def("partial_fit", &partial_fit, py::arg("net").none(true), py::arg("X"), py::arg("y"),
        py::arg("classify"), py::arg("class_names"), py::arg("feature_names"), py::arg("settings"));
}
