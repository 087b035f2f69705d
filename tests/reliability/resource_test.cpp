// Resource bounds (RELIABILITY.md A.9, A.26, A.49; design rule 1): files whose headers claim 2^40
// elements (raw IDX, gzip IDX, safetensors) are refused from the header, before anything sized by
// the claim is allocated. Each runs through the CLI in a child process, whose peak resident
// memory (wait4's ru_maxrss) must stay under 64 MiB. Sanitizer builds start bigger (ASan's shadow
// memory alone is tens of MiB), so there the bound is 64 MiB above what the same binary uses to
// fail on a missing file. The same holds for a model whose metadata alone claims billions of
// parameters. And CPU time: wide inputs (100,000 CSV columns, a long layers list) are read in
// time linear in their size; quadratic scans took 7 to 25 s on 0.5-1 MB files (tests/regress).
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include "backprop/data.hpp"
#include "backprop/error.hpp"
#include "backprop/model_file.hpp"
#include "reliability/child.hpp"

namespace backprop::reliability_test {
namespace {

namespace fs = std::filesystem;
using cli_test::Bytes;
using cli_test::gzip_bytes;
using cli_test::idx_bytes;
using cli_test::le64;
using cli_test::TempDir;
using cli_test::write_bytes;

constexpr long kBoundKiB = 64 * 1024;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

class PeakMemory : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    fs::create_directories(dir_->path() / "captures");
    // What this binary needs to start and fail on a missing file.
    baseline_kib_ = run({"info", "--model", (dir_->path() / "missing").string()}).max_rss_kib;
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }

  static Ended run(const std::vector<std::string>& args) {
    Child c(BACKPROP_CLI, args, {}, dir_->path() / "captures");
    return c.wait();
  }
  static std::string write(const std::string& name, const Bytes& bytes) {
    const std::string p = (dir_->path() / name).string();
    write_bytes(p, bytes);
    return p;
  }

  // Runs the CLI on a lying file: exit 1, one line naming it, and a bounded peak.
  static void expect_refused_within_bound(const std::vector<std::string>& args,
                                          const std::string& says) {
    const Ended e = run(args);
    SCOPED_TRACE(e.describe());
    ASSERT_TRUE(e.exited) << "killed by signal " << e.term_signal;
    EXPECT_EQ(e.exit_code, 1);
    EXPECT_NE(e.err.find(says), std::string::npos);
    const long limit = kSanitized ? baseline_kib_ + kBoundKiB : kBoundKiB;
    std::cout << "peak RSS " << e.max_rss_kib << " KiB (baseline " << baseline_kib_
              << " KiB, limit " << limit << " KiB)\n";
    EXPECT_LT(e.max_rss_kib, limit);
  }

  static TempDir* dir_;
  static long baseline_kib_;
};

TempDir* PeakMemory::dir_ = nullptr;
long PeakMemory::baseline_kib_ = 0;

TEST_F(PeakMemory, StaysBoundedForIdxClaiming2To40) {
  // 2^20 x 2^20 u8 = 2^40 bytes declared; 64 bytes present.
  const Bytes header_and_some = idx_bytes(0x08, {1u << 20, 1u << 20}, Bytes(64, 1));
  const std::string labels = write("labels.idx", idx_bytes(0x08, {1u << 20}, Bytes(1u << 20, 0)));
  const std::string raw = write("huge.idx", header_and_some);
  expect_refused_within_bound({"train", "--train", raw, "--labels", labels, "--no-save"},
                              "huge.idx: byte 12");
  // Inside gzip the claim is refused against --max-input-bytes (8 GiB), and when that is raised,
  // against what 100 compressed bytes can possibly decode to.
  const std::string gz = write("huge.idx.gz", gzip_bytes(header_and_some));
  expect_refused_within_bound({"train", "--train", gz, "--labels", labels, "--no-save"},
                              "over the limit of 8589934592");
  expect_refused_within_bound({"train", "--train", gz, "--labels", labels, "--no-save",
                               "--max-input-bytes", "1125899906842624"},
                              "can decode to at most");
  // f64 elements: 2^43 bytes declared.
  const std::string f64 = write("huge64.idx", idx_bytes(0x0E, {1u << 20, 1u << 20}, Bytes(64, 0)));
  expect_refused_within_bound({"train", "--train", f64, "--labels", labels, "--no-save"},
                              "huge64.idx: byte 12");
}

TEST_F(PeakMemory, StaysBoundedForSafetensorsClaiming2To40) {
  // One F32 tensor of 2^20 x 2^20 elements: data_offsets [0, 2^42], 64 bytes of data present.
  std::string header =
      R"({"__metadata__":{"format":"backprop-mlp","format_version":"1"},"0.weight":{"dtype":"F32",)"
      R"("shape":[1048576,1048576],"data_offsets":[0,4398046511104]}})";
  while ((8 + header.size()) % 8 != 0) header += ' ';
  Bytes file = le64(header.size());
  file.insert(file.end(), header.begin(), header.end());
  file.insert(file.end(), 64, 0);
  const std::string model = write("huge.safetensors", file);
  expect_refused_within_bound({"info", "--model", model}, "huge.safetensors");
  // And a header length of 2^40 bytes in a 72-byte file.
  Bytes lying_length = le64(std::uint64_t{1} << 40);
  lying_length.insert(lying_length.end(), 64, ' ');
  const std::string hlen = write("hlen.safetensors", lying_length);
  expect_refused_within_bound({"info", "--model", hlen}, "past end of file");
}

TEST_F(PeakMemory, StaysBoundedForAModelWhoseLayersClaimBillionsOfParameters) {
  // 480 bytes: layers [40000,40000] in the metadata, tensors of shape [1,1] and [1].
  const std::string model = std::string(BACKPROP_SOURCE_DIR) +
                            "/tests/regress/model_load/layers_metadata_claims_1.6e9_parameters";
  expect_refused_within_bound({"info", "--model", model}, "expected [40000,40000]");
}

// A linear pass over a megabyte takes milliseconds, also under sanitizers; the quadratic scans
// this guards against took 7 s (CSV header) and 24 s (model) in an optimised build.
constexpr double kLinearSeconds = 5.0;

double seconds_of(const std::function<void()>& f) {
  const auto start = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

TEST(CpuTime, LoadersStayLinearOnWideInputs) {
  constexpr int kColumns = 200000;
  std::string header, row;
  for (int j = 0; j < kColumns; ++j) {
    header += "c" + std::to_string(j) + ",";
    row += "1,";
  }
  header += "label\n";
  const std::string text = header + row + "x\n" + row + "y\n";
  const std::span<const std::uint8_t> bytes(reinterpret_cast<const std::uint8_t*>(text.data()),
                                            text.size());
  // Training: every header name checked for duplicates.
  EXPECT_LT(seconds_of([&] { parse_csv(bytes, "wide.csv", {}, {}); }), kLinearSeconds);
  // Eval/predict: a model's 200,000 features looked up by name, in reverse order.
  CsvOptions by_name;
  for (int j = kColumns - 1; j >= 0; --j) by_name.feature_names.push_back("c" + std::to_string(j));
  EXPECT_LT(seconds_of([&] { parse_csv(bytes, "wide.csv", by_name, {}); }), kLinearSeconds);

  const std::string path = std::string(BACKPROP_SOURCE_DIR) +
                           "/tests/regress/model_load/many_tensors_and_a_long_layers_list";
  std::ifstream f(path, std::ios::binary);
  const Bytes model((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  ASSERT_GT(model.size(), 400000u);
  EXPECT_LT(seconds_of([&] {
              try {
                parse_model(model, "long.safetensors", {});
                ADD_FAILURE() << "accepted";
              } catch (const Error& e) {
                EXPECT_NE(std::string(e.what()).find("'1000.weight' is missing"), std::string::npos)
                    << e.what();
              }
            }),
            kLinearSeconds);
}

}  // namespace
}  // namespace backprop::reliability_test
