// The bad-input catalogue of RELIABILITY.md (cases A.1-A.80) as one table: for every case, the
// tests that prove it (most already live next to the loader they test: tests/data, tests/io,
// tests/cli), the rows this file adds for cases nothing else covered, and the cases that wait for
// a feature or a decision, each saying what it waits for. Nothing is skipped silently:
//  - Catalogue.ListsEveryCaseOnceAndDecidesEachOne: A.1-A.80, each exactly once, each covered,
//    pending with a reason, or not applicable with a reason;
//  - Catalogue.EveryReferencedTestStillExists: each reference names a test (and, for table-driven
//    tests, a row) that is still in its file, so a renamed or deleted test fails here;
//  - Catalogue.PendingCasesSayWhatTheyWaitFor: prints the pending list into the test log;
//  - CatalogueCli/FailsCleanly: the new command-line rows (a file or argv in; the exit code, the
//  one
//    stderr line and its parts, no output file), like tests/cli's BadInput table;
//  - the B.4 numerical references, and a few library-level rows.
#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../fuzz/checkpoint_reseal.hpp"
#include "backprop/batch.hpp"
#include "backprop/checkpoint.hpp"
#include "backprop/io.hpp"
#include "backprop/optimizer.hpp"
#include "backprop/rng.hpp"
#include "backprop/train.hpp"
#include "cli/cli_util.hpp"
#include "test_util.hpp"

namespace backprop::reliability_test {
namespace {

namespace fs = std::filesystem;
using cli_test::Bytes;
using cli_test::idx_bytes;
using cli_test::list_dir;
using cli_test::RunResult;
using cli_test::TempDir;
using cli_test::write_bytes;
using cli_test::write_text;

// ---------------------------------------------------------------------------------------------
// The catalogue

// A test that proves (part of) a case: its file under tests/, "Suite.Name" as written in its
// TEST/TEST_P macro, and for table-driven tests the row's label as it appears (in quotes) in the
// file.
struct Ref {
  const char* file;
  const char* test;
  const char* row = nullptr;
};

struct Case {
  int number;
  const char* what;
  std::vector<Ref> covered_by;
  const char* pending = nullptr;         // what it waits for (an issue, or a decision)
  const char* not_applicable = nullptr;  // why the case cannot arise in backprop as it is
};

constexpr const char* kIdx = "data/idx_test.cpp";
constexpr const char* kGzip = "data/gzip_test.cpp";
constexpr const char* kCsv = "data/csv_test.cpp";
constexpr const char* kFile = "io/file_test.cpp";
constexpr const char* kSt = "io/safetensors_test.cpp";
constexpr const char* kModel = "io/model_file_test.cpp";
constexpr const char* kCli = "cli/cli_test.cpp";
constexpr const char* kHere = "reliability/catalogue_test.cpp";
constexpr const char* kRes = "reliability/resource_test.cpp";
constexpr const char* kFault = "reliability/fault_injection_test.cpp";
constexpr const char* kCkpt = "io/checkpoint_test.cpp";
constexpr const char* kResume = "cli/train_test.cpp";
constexpr const char* kNum = "reliability/numerical_test.cpp";

// Table-driven tests whose rows are referenced by label.
constexpr const char* kIdxBad = "ParseIdx.RejectsEveryBadRawFileWithItsPlace";
constexpr const char* kGzBad = "GzipDecoder.RejectsEveryBrokenStreamWithOneLineNamingTheCheck";
constexpr const char* kCsvBad = "ParseCsv.RejectsEveryBadFileNamingLineAndColumn";
constexpr const char* kStBad = "ParseSafetensors.RejectsEveryBadCaseWithItsCodeAndMessage";
constexpr const char* kModelBad =
    "ParseModel.RejectsEachBrokenFileWithItsCodeAndAMessageNamingFileAndProblem";
constexpr const char* kCliBad = "BadInput.FailsCleanly";
constexpr const char* kHereCli = "CatalogueCli.FailsCleanly";
constexpr const char* kHereCkpt = "CatalogueCheckpoint.RejectedWithItsReason";

const std::vector<Case>& catalogue() {
  static const std::vector<Case> cases = {
      // IDX (raw)
      {1, "empty IDX file", {{kIdx, kIdxBad, "0-byte file"}, {kCli, kCliBad, "EmptyFile"}}},
      {2, "IDX shorter than the 4-byte magic", {{kIdx, kIdxBad, "3-byte file"}}},
      {3,
       "first magic bytes non-zero; gzip data is read by content",
       {{kIdx, kIdxBad, "non-zero magic"},
        {kCli, kCliBad, "IdxImagesWithWrongMagic"},
        {kIdx, "ReadIdx.ReadsRawAndGzipFilesByContentNotName"}}},
      {4,
       "byte-swapped magic",
       {{kIdx, kIdxBad, "byte-swapped magic"}, {kCli, kCliBad, "IdxImagesWithByteSwappedMagic"}}},
      {5,
       "unknown element type code",
       {{kIdx, kIdxBad, "type code"}, {kCli, kCliBad, "IdxUnknownTypeCode"}}},
      {6,
       "ndims 0, or wrong for the role",
       {{kIdx, kIdxBad, "ndims 0"},
        {kIdx, "LoadIdx.RejectsFilesThatDoNotFitTheirRole"},
        {kCli, kCliBad, "IdxLabelsWithTwoDimensions"},
        {kCli, kCliBad, "IdxImagesWithOneDimension"}}},
      {7, "header cut inside the dimensions", {{kIdx, kIdxBad, "header truncated in dims"}}},
      {8, "a dimension of 0", {{kIdx, kIdxBad, "zero dimension"}}},
      {9,
       "a dimension >= 2^31 (bounded by the file's real size and --max-input-bytes, no "
       "separate per-dimension cap)",
       {{kHere, kHereCli, "IdxDimensionOf2To31"},
        {kRes, "PeakMemory.StaysBoundedForIdxClaiming2To40"}}},
      {10,
       "dims x element size overflows 64 bits",
       {{kIdx, kIdxBad, "dims product overflows"},
        {kIdx, kIdxBad, "bytes overflow"},
        {kCli, kCliBad, "IdxDimensionProductOverflows"}}},
      {11,
       "declared payload larger than the file",
       {{kIdx, kIdxBad, "payload larger than file"},
        {kIdx, kIdxBad, "huge declared payload"},
        {kIdx, "ParseIdx.RejectsEveryTruncationOfRawAndGzipFiles"},
        {kCli, kCliBad, "IdxDimensionsExceedTheFile"}}},
      {12,
       "trailing bytes after the payload",
       {{kIdx, kIdxBad, "trailing bytes"}, {kCli, kCliBad, "IdxTrailingBytes"}}},
      {13,
       "labels of a non-integer type",
       {{kIdx, "LoadIdx.RejectsFilesThatDoNotFitTheirRole"}, {kHere, kHereCli, "IdxFloatLabels"}}},
      {14,
       "label negative, or beyond the classes (the model's, or max_classes)",
       {{kIdx, "LoadIdx.RejectsFilesThatDoNotFitTheirRole"},
        {kCli, kCliBad, "IdxEvalClassTheModelNeverSaw"}}},
      {15,
       "image count differs from label count",
       {{kIdx, "LoadIdx.RejectsFilesThatDoNotFitTheirRole"},
        {kCli, kCliBad, "IdxImageAndLabelCountsDiffer"}}},
      {16,
       "sample shape differs between train and test, or from the model",
       {{kCli, kCliBad, "EvalIdxWidthDiffersFromModel"},
        {kCli, kCliBad, "PredictIdxWidthDiffersFromModel"},
        {kHere, kHereCli, "IdxTestImagesOfAnotherWidth"},
        {kHere, kHereCli, "IdxTestImagesOfAnotherShape"}}},
      {17,
       "NaN or Inf in float IDX data",
       {{kIdx, "LoadIdx.RejectsFilesThatDoNotFitTheirRole"}, {kHere, kHereCli, "IdxNanPixel"}}},
      {18,
       "a directory, FIFO or character device",
       {{kFile, "ReadFile.RejectsADirectory"},
        {kFile, "ReadFile.RejectsDevZeroAtOnceAsACharacterDevice"},
        {kFile, "ReadFile.RejectsAFifoWithoutWaitingForAWriter"},
        {kCli, kCliBad, "DirectoryInsteadOfFile"},
        {kHere, kHereCli, "DevZeroAsTrainingData"}}},
      {19,
       "missing file, or one that shrinks while read (unreadable: see not_applicable)",
       {{kFile, "ReadFile.RejectsAMissingPathNamingItAndTheErrno"},
        {kCli, kCliBad, "MissingFile"},
        {kFault, "ShortReads.AFileThatShrinksWhileReadIsAnErrorAndSlowReadsChangeNothing"}}},
      // gzip
      {20,
       ".gz name on raw data, gzip data without .gz: content decides",
       {{kIdx, "ReadIdx.ReadsRawAndGzipFilesByContentNotName"}, {kCsv, kCsvBad, "gzip content"}}},
      {21,
       "truncated deflate stream ends in an error, never a spin",
       {{kGzip, "GzipDecoder.RejectsEveryTruncationWithoutHanging"},
        {kGzip, kGzBad, "cut last 10 bytes"},
        {kCli, kCliBad, "TruncatedGzip"}}},
      {22,
       "corrupt deflate data",
       {{kGzip, kGzBad, "invalid block type"},
        {kGzip, "GzipDecoder.RejectsFlippedBytesAnywhereInTheBody"},
        {kCli, kCliBad, "CorruptGzip"}}},
      {23, "CRC-32 mismatch", {{kGzip, kGzBad, "CRC mismatch"}}},
      {24, "ISIZE mismatch (never used to size anything)", {{kGzip, kGzBad, "ISIZE mismatch"}}},
      {25,
       "decompression bomb",
       {{kIdx, "ParseIdx.StopsABombAtTheDeclaredPayload"},
        {kIdx, "ParseIdx.AppliesTheInputCapToTheDecodedSize"},
        {kGzip, "GzipDecoder.StopsAtTheCapWithoutDecodingTheRest"}}},
      {26,
       "tiny .gz whose IDX header declares huge dims",
       {{kIdx, "ParseIdx.FailsFastOnATinyGzipDeclaringHugeDims"},
        {kRes, "PeakMemory.StaysBoundedForIdxClaiming2To40"}}},
      {27,
       "multi-member gzip is read whole",
       {{kGzip, "GzipDecoder.DecodesConcatenatedMembersInOrder"},
        {kIdx, "ParseIdx.ReadsConcatenatedGzipMembers"}}},
      {28,
       "trailing garbage after the last member",
       {{kGzip, kGzBad, "trailing garbage"}, {kGzip, kGzBad, "trailing zeros"}}},
      {29,
       "FEXTRA/FNAME/FCOMMENT fields; zlib >= 1.2.13 (CVE-2022-37434)",
       {{kGzip, kGzBad, "unterminated FNAME"},
        {kHere, "Zlib.IsAtLeast1_2_13AndReadsEveryOptionalHeaderField"}}},
      {30,
       "valid gzip around invalid IDX says (inside NAME)",
       {{kIdx, "ParseIdx.ReportsIdxErrorsInsideGzipWithTheFileName"}}},
      // CSV
      {31,
       "empty CSV, or a header only",
       {{kCsv, kCsvBad, "empty file"}, {kCsv, kCsvBad, "header only"}}},
      {32, "ragged row", {{kCsv, kCsvBad, "ragged: more fields"}, {kCli, kCliBad, "CsvRaggedRow"}}},
      {33,
       "non-numeric field",
       {{kCsv, kCsvBad, "abc"},
        {kCsv, kCsvBad, "1.2.3"},
        {kCsv, kCsvBad, "--1"},
        {kCsv, kCsvBad, "empty cell"},
        {kCli, kCliBad, "CsvNonNumericCell"}}},
      {34,
       "decimal comma; parsing is locale-independent",
       {{kCsv, kCsvBad, "decimal comma"},
        {kCsv, "ParseCsv.GivesTheSameResultsUnderADecimalCommaLocale"}}},
      {35,
       "nan, inf, 1e999, hex floats, leading + and blanks (grammar in docs/formats.md)",
       {{kCsv, kCsvBad, "nan"},
        {kCsv, kCsvBad, "infinity"},
        {kCsv, kCsvBad, "1e999"},
        {kCsv, kCsvBad, "hex float"},
        {kCsv, "ParseCsv.AcceptsTheNumberGrammar"}}},
      {36,
       "label unknown to the model (CSV labels are class names by design: '3.5' and '-1' are "
       "names, docs/formats.md)",
       {{kCsv, kCsvBad, "unseen class"},
        {kCsv, kCsvBad, "empty label"},
        {kCli, kCliBad, "CsvEvalClassTheModelNeverSaw"}}},
      {37,
       "unterminated quote, quoted delimiters and newlines, stray quote",
       {{kCsv, kCsvBad, "unterminated quote"},
        {kCsv, kCsvBad, "stray quote"},
        {kCsv, "ParseCsv.HandlesQuotesCrlfBomAndBlankLines"}}},
      {38,
       "BOM and CRLF accepted; NUL and invalid UTF-8 rejected; no final newline accepted",
       {{kCsv, "ParseCsv.HandlesQuotesCrlfBomAndBlankLines"},
        {kCsv, kCsvBad, "NUL in a field"},
        {kCsv, kCsvBad, "invalid UTF-8 in header"}}},
      {39,
       "extremely long line",
       {{kCsv, "ParseCsv.ChecksTheLineLimitWithoutReadingTheWholeLine"},
        {kCsv, kCsvBad, "line over max_line_bytes"}}},
      {40,
       "header mismatch, trailing delimiter, blank lines, feature count vs the model",
       {{kCsv, kCsvBad, "trailing delimiter"},
        {kCsv, "ParseCsv.DetectsTheHeaderBothWays"},
        {kCli, kCliBad, "EvalCsvWidthDiffersFromModel"},
        {kHere, kHereCli, "NoHeaderOnAHeadedFile"}}},
      // safetensors
      {41, "file under 8 bytes", {{kSt, kStBad, "empty file"}, {kSt, kStBad, "7 bytes"}}},
      {42,
       "N over the cap or 100,000,000; 8 + N overflowing; 8 + N past the file",
       {{kSt, kStBad, "N = 2^64-1"},
        {kSt, kStBad, "N over the configured cap"},
        {kSt, "ParseSafetensors.RejectsAHeaderOverTheFormatMaximumEvenWithARaisedCap"},
        {kCli, kCliBad, "ModelHeaderLengthPastTheFile"}}},
      {43,
       "header not UTF-8",
       {{kSt, kStBad, "invalid UTF-8 byte"}, {kSt, kStBad, "overlong UTF-8"}}},
      {44,
       "header not a JSON object; whitespace around it accepted",
       {{kSt, kStBad, "array"},
        {kSt, kStBad, "garbage after the object"},
        {kSt, kStBad, "truncated JSON"},
        {kSt, "ParseSafetensors.AcceptsWhatTheFormatAllows"},
        {kCli, kCliBad, "ModelBadJsonHeader"}}},
      {45,
       "nesting deeper than 8; __metadata__ values not strings",
       {{kSt, "ParseSafetensors.RejectsAMillionOpeningBracketsQuicklyWithoutRecursing"},
        {kSt, kStBad, "metadata number value"}}},
      {46,
       "duplicate keys anywhere",
       {{kSt, kStBad, "duplicate tensor"},
        {kSt, kStBad, "duplicate metadata key"},
        {kSt, kStBad, "duplicate dtype"}}},
      {47,
       "tensor entry missing a key, or with an unknown one",
       {{kSt, kStBad, "missing dtype"}, {kSt, kStBad, "unknown key"}}},
      {48,
       "unknown or unsupported dtype",
       {{kSt, kStBad, "lowercase dtype"},
        {kSt, kStBad, "F128"},
        {kSt, kStBad, "C64"},
        {kModel, kModelBad, "a dtype the model does not support (F64)"},
        {kCli, kCliBad, "ModelUnknownDtype"}}},
      {49,
       "shape negative, fractional, over 2^53, or overflowing",
       {{kSt, kStBad, "negative dimension"},
        {kSt, kStBad, "fractional dimension"},
        {kSt, kStBad, "dimension over 2^53"},
        {kSt, kStBad, "element count overflow"},
        {kSt, kStBad, "byte size overflow"},
        {kRes, "PeakMemory.StaysBoundedForSafetensorsClaiming2To40"}}},
      {50,
       "data_offsets not [begin, end], or end < begin",
       {{kSt, kStBad, "one offset"}, {kSt, kStBad, "end before begin"}}},
      {51,
       "overlapping tensors",
       {{kSt, kStBad, "overlap"}, {kSt, kStBad, "two names on the same bytes"}}},
      {52,
       "gap between tensors, first not at 0",
       {{kSt, kStBad, "gap"}, {kSt, kStBad, "first tensor not at 0"}}},
      {53,
       "end - begin != elements x dtype size",
       {{kSt, kStBad, "offsets span too little"},
        {kCli, kCliBad, "ModelShapeDoesNotMatchOffsets"}}},
      {54,
       "data section truncated or with bytes appended",
       {{kSt, kStBad, "truncated data"},
        {kSt, kStBad, "appended data"},
        {kSt, "SafetensorsMutation.EveryTruncationIsRejected"},
        {kSt, "SafetensorsMutation.EveryAppendIsRejected"},
        {kCli, kCliBad, "ModelTruncated"}}},
      {55,
       "a tensor named __metadata__, or __metadata__ with tensor structure",
       {{kSt, kStBad, "tensor named __metadata__"}, {kSt, kStBad, "metadata nested object"}}},
      {56,
       "model: missing or extra tensor, wrong rank, broken chaining, zero-sized layer",
       {{kModel, kModelBad, "a missing tensor"},
        {kModel, kModelBad, "an extra tensor of any name"},
        {kModel, kModelBad, "a bias of rank 2"},
        {kModel, kModelBad, "layers wider than the tensors"},
        {kModel, kModelBad, "a zero-width layer"}}},
      {57,
       "architecture metadata missing or inconsistent; format/version absent or newer",
       {{kModel, kModelBad, "no __metadata__"},
        {kModel, kModelBad, "format_version 2"},
        {kModel, kModelBad, "an unknown hidden activation"},
        {kModel, kModelBad, "more layers than tensors"},
        {kCli, kCliBad, "ModelWithoutBackpropMetadata"}}},
      {58,
       "NaN or Inf weights (always rejected: there is no --allow-nonfinite)",
       {{kModel, kModelBad, "a NaN weight"}, {kModel, kModelBad, "an infinite bias"}}},
      {59,
       "ZIP (.pt) or pickle handed to the model loader: named, never unpickled",
       {{kModel, kModelBad, "a ZIP archive (PyTorch .pt)"},
        {kModel, kModelBad, "a protocol-2 pickle"},
        {kModel, "ParseModel.LoadsFilesWhoseHeaderLengthBeginsLikeAPickle"}}},
      {60,
       "tensor names with control characters or over 1 KiB, echoed sanitised",
       {{kSt, kStBad, "newline in a name"},
        {kSt, kStBad, "name over 1 KiB"},
        {kSt, "ParseSafetensors.EchoesHostileNamesSanitisedAndShort"}}},
      // Checkpoints
      {61,
       "checkpoint format marker missing or foreign, or a newer version",
       {{kHere, kHereCkpt, "A61NoFormatMarker"},
        {kHere, kHereCkpt, "A61NewerFormatVersion"},
        {kCkpt, "Checkpoint.RefusesForeignFiles"}}},
      {62,
       "checksum mismatch: any single bit flipped",
       {{kCkpt, "Checkpoint.RejectsEveryTruncationAndEverySingleBitFlip"},
        {kHere, kHereCkpt, "A62ByteFlippedInTheModel"},
        {kResume, "Resume.ACorruptNewestCheckpointIsReportedAndThePreviousOneUsed"}}},
      {63,
       "only *.tmp checkpoints after a crash: never read, 'no valid checkpoint'",
       {{kHere, "CatalogueCheckpoint.OnlyATemporaryIsNoValidCheckpoint"},
        {kHere, kHereCli, "ResumeFromAFolderHoldingOnlyATemporary"},
        {kCkpt, "FindCheckpoint.FallsBackPastACorruptNewestAndSaysSo"},
        {kFault, "Sigkill.DuringCheckpointWritesEveryFinalNamedCheckpointIsComplete"}}},
      {64,
       "optimizer state vectors that do not fit the parameters",
       {{kHere, kHereCkpt, "A64MomentShorterThanTheParameters"},
        {kHere, kHereCkpt, "A64MomentMissing"},
        {kHere, kHereCkpt, "A64UnknownOptimizerEntry"}}},
      {65,
       "optimizer or its hyper-parameters other than the command line's: refused with the "
       "differences named (there is no --reset-optimizer: start with --init-from instead)",
       {{kResume, "Resume.RefusesAnotherConfigurationNamingTheDifferences"},
        {kHere, kHereCkpt, "A65OptimizerNameNotAName"}}},
      {66,
       "step counter invalid: Adam t = 0 with moments, negative, huge or fractional counts",
       {{kHere, kHereCkpt, "A66AdamStepZeroWithMoments"},
        {kHere, kHereCkpt, "A66CounterOver2To62"},
        {kHere, kHereCkpt, "A66CounterNegative"},
        {kHere, kHereCkpt, "A66FractionalBatch"},
        {kHere, kHereCkpt, "A66EpochOf1e300"},
        {kHere, kHereCkpt, "A66EpochWithoutItsHistory"}}},
      {67,
       "RNG state malformed: all zeros, not four words, not numbers",
       {{kHere, kHereCkpt, "A67RngAllZeros"},
        {kHere, kHereCkpt, "A67RngOfThreeWords"},
        {kHere, kHereCkpt, "A67RngWordNotANumber"}}},
      {68,
       "data-order state inconsistent with the data: rows, batch, epoch, data hash (no thread "
       "or world-size check: results do not depend on the thread count, and there is no MPI)",
       {{kHere, kHereCkpt, "A68NegativeRowInTheOrder"},
        {kHere, "CatalogueCheckpoint.ResumeRefusesAStateThatDoesNotFitTheData"},
        {kResume, "Resume.RefusesOtherData"}}},
      {69,
       "non-finite parameters, moments, best weights or learning-rate scale",
       {{kHere, kHereCkpt, "A69NanWeightInTheModel"},
        {kHere, kHereCkpt, "A69NanMoment"},
        {kHere, kHereCkpt, "A69InfiniteBestWeight"},
        {kHere, kHereCkpt, "A69InfinitePlateauScale"},
        {kCkpt, "CheckpointWriter.RefusesANonFiniteModelAndKeepsThePrevious"}}},
      // CLI
      {70, "unknown or misspelt flag", {{kCli, kCliBad, "UnknownFlag"}}},
      {71,
       "missing required argument",
       {{kHere, kHereCli, "EvalWithoutData"},
        {kHere, kHereCli, "PredictWithoutInput"},
        {kHere, kHereCli, "TrainFlagWithoutItsValue"}}},
      {72,
       "numbers that do not parse fully",
       {{kCli, kCliBad, "EpochsNotANumber"},
        {kHere, kHereCli, "LearningRateWithTrailingText"},
        {kHere, kHereCli, "IntegerFlagInExponentNotation"},
        {kHere, kHereCli, "EmptyIntegerFlag"}}},
      {73,
       "out of range: lr, epochs, batch, widths, threads, momentum, betas, eps (batch > rows is "
       "accepted by decision as one batch of every row, as PyTorch's DataLoader does)",
       {{kCli, kCliBad, "LearningRateNegative"},
        {kCli, kCliBad, "LearningRateNan"},
        {kCli, kCliBad, "BatchSizeZero"},
        {kHere, kHereCli, "LearningRateInfinite"},
        {kHere, kHereCli, "EpochsZero"},
        {kHere, kHereCli, "ThreadsNegative"},
        {kHere, kHereCli, "ThreadsHuge"},
        {kHere, kHereCli, "HiddenWidthZero"},
        {kResume, "Resume.BadValuesOfTheTrainingFlagsExitTwo"},
        {kResume, "Resume.ABatchLargerThanTheRowsIsOneBatchOfEveryRow"}}},
      {74,
       "parameter count overflowing or over the cap, before any allocation",
       {{kHere, kHereCli, "ParametersOverTheCap"}, {kHere, kHereCli, "WidthOver2To24"}}},
      {75,
       "output equals an input, is a directory, or its directory is missing (unwritable: see "
       "not_applicable)",
       {{kCli, kCliBad, "SaveIsTheTrainingData"},
        {kCli, kCliBad, "SaveIsADirectory"},
        {kCli, kCliBad, "SaveIntoNonexistentDirectory"},
        {kCli, kCliBad, "PredictOutputIsTheModel"},
        {kHere, kHereCli, "LogIsADirectory"}}},
      {76,
       "conflicting flags; --resume with --init-from is taken only as the interrupted run's own "
       "flag (the configuration comparison refuses any other); --init-from with architecture "
       "flags is refused",
       {{kCli, kCliBad, "DataAndTrainTogether"},
        {kHere, kHereCli, "HeaderAndNoHeader"},
        {kHere, kHereCli, "LayersAndHidden"},
        {kHere, kHereCli, "StandardizeAndNoStandardize"},
        {kHere, kHereCli, "InitFromWithHidden"},
        {kResume, "Resume.RefusesAnotherConfigurationNamingTheDifferences"}}},
      {77,
       "config-file problems",
       {},
       nullptr,
       "backprop has no config file: every setting is a flag"},
      {78,
       "paths holding newlines or escape sequences echoed on one sanitised line",
       {{kHere, kHereCli, "NewlineInPath"},
        {kHere, kHereCli, "EscapeSequenceInAPath"},
        {kHere, kHereCli, "EscapeSequenceInAFlagValue"}}},
      {79,
       "class count vs the label range",
       {{kCli, kCliBad, "IdxEvalClassTheModelNeverSaw"},
        {kCli, kCliBad, "CsvTestClassNotInTraining"}},
       nullptr},
      {80,
       "MPI: ranks given another configuration, and more ranks than training rows (sharded or "
       "not)",
       {{"mpi/data_parallel_test.cpp",
         "DataParallel.RanksWithAnotherConfigurationAreRefusedBeforeTraining"},
        {"mpi/data_parallel_test.cpp", "DataParallel.ARankWithBadDataEndsTheJobWithItsMessage"},
        {"mpi/data_parallel_test.cpp", "DataParallel.MoreRanksThanTrainingRowsTrains"},
        {"data/shard_test.cpp", "Sharded.ARankWithNoRowsToEvaluateAddsNothing"}},
       nullptr},
  };
  return cases;
}

// The numerical half of the plan (B.4) that exists: references, like the cases above.
struct NumericalRef {
  const char* what;
  std::vector<Ref> covered_by;
  const char* pending = nullptr;
};

const std::vector<NumericalRef>& numerical() {
  static const std::vector<NumericalRef> refs = {
      {"B.4.5 softmax/cross-entropy finite at logits +-1000 (f32), +-1e4 (f64), one of 89",
       {{"loss_test.cpp", "Softmax.StableForHugeLogits"},
        {"loss_test.cpp", "CrossEntropy.SoftmaxLossIsTheNegativeLogProbability"},
        {"loss_test.cpp", "CrossEntropy.BinaryFromLogitsIsFiniteAtTheExtremes"},
        {"kernels/math_test.cpp", "MathOfEveryTable.SoftmaxRowsSumToOneAtExtremeLogits"}}},
      {"B.4.6 a diverging run stops with kNumeric, and a non-finite model is never written",
       {{"train_test.cpp", "Train.StopsWithAClearErrorWhenTheLossDiverges"},
        {"io/model_file_test.cpp", "SerializeModel.RefusesNonFiniteParameters"},
        {"io/model_file_test.cpp",
         "SaveModel.RefusesANanWeightAndLeavesTheExistingFileUntouched"}}},
      {"B.4.6 NaN injected in a batch or a weight is caught within one step",
       {{"train_resume_test.cpp", "NonFinite.StopsNamingTheBatchAndLayerOrSkipsTheBatch"},
        {kNum, "NonFinite.ANanInOneInputRowStopsTrainingAtItsBatch"},
        {kNum, "NonFinite.SkipBatchSkipsExactlyTheBatchHoldingANanRow"},
        {kHere, kHereCli, "InitFromAModelWithANanWeight"},
        {kCkpt, "CheckpointWriter.RefusesANonFiniteModelAndKeepsThePrevious"}}},
      {"B.4.5 a whole model's forward and backward at logits of +-1000",
       {{kNum, "Logits.OfPlusMinus1000GiveAFiniteLossAndGradientThroughTheModel"}}},
      {"B.0 no -ffast-math: NaN is NaN in the tested build",
       {{kHere, "Numerics.QuietNanIsNanInThisBuild"}}},
  };
  return refs;
}

std::string source_text(const std::string& relative) {
  const fs::path p = fs::path(BACKPROP_SOURCE_DIR) / "tests" / relative;
  std::ifstream f(p, std::ios::binary);
  if (!f) return {};
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

// "TEST(Suite, Name)", "TEST_P(Suite, Name)" or "TEST_F(Suite, Name)" appears in the file, and the
// row label, when there is one, appears in it in quotes.
std::string problem_with(const Ref& r) {
  static std::map<std::string, std::string> files;
  auto it = files.find(r.file);
  if (it == files.end()) it = files.emplace(r.file, source_text(r.file)).first;
  const std::string& text = it->second;
  if (text.empty()) return std::string("tests/") + r.file + " is missing";
  const std::string test = r.test;
  const auto dot = test.find('.');
  const std::string args = "(" + test.substr(0, dot) + ", " + test.substr(dot + 1) + ")";
  if (text.find("TEST" + args) == std::string::npos &&
      text.find("TEST_P" + args) == std::string::npos &&
      text.find("TEST_F" + args) == std::string::npos) {
    return std::string("tests/") + r.file + " has no test " + test;
  }
  if (r.row != nullptr && text.find("\"" + std::string(r.row) + "\"") == std::string::npos) {
    return std::string("tests/") + r.file + " has no row \"" + r.row + "\" (for " + test + ")";
  }
  return {};
}

TEST(Catalogue, ListsEveryCaseOnceAndDecidesEachOne) {
  std::set<int> seen;
  for (const Case& c : catalogue()) {
    SCOPED_TRACE("A." + std::to_string(c.number) + " " + c.what);
    EXPECT_TRUE(seen.insert(c.number).second) << "listed twice";
    EXPECT_GE(c.number, 1);
    EXPECT_LE(c.number, 80);
    const bool decided = !c.covered_by.empty() || c.pending != nullptr || c.not_applicable;
    EXPECT_TRUE(decided) << "neither covered, pending nor not applicable";
    if (c.pending) {
      EXPECT_GT(std::string(c.pending).size(), 5u);
    }
    if (c.not_applicable) {
      EXPECT_GT(std::string(c.not_applicable).size(), 5u);
    }
  }
  EXPECT_EQ(seen.size(), 80u);
}

TEST(Catalogue, EveryReferencedTestStillExists) {
  std::size_t refs = 0;
  for (const Case& c : catalogue()) {
    for (const Ref& r : c.covered_by) {
      ++refs;
      const std::string p = problem_with(r);
      EXPECT_TRUE(p.empty()) << "A." << c.number << ": " << p;
    }
  }
  for (const NumericalRef& n : numerical()) {
    for (const Ref& r : n.covered_by) {
      ++refs;
      const std::string p = problem_with(r);
      EXPECT_TRUE(p.empty()) << n.what << ": " << p;
    }
  }
  EXPECT_GT(refs, 150u);
}

TEST(Catalogue, PendingCasesSayWhatTheyWaitFor) {
  int covered = 0, pending = 0, na = 0;
  std::ostringstream log;
  for (const Case& c : catalogue()) {
    if (!c.covered_by.empty()) ++covered;
    if (c.pending) {
      ++pending;
      log << "  PENDING A." << c.number << " " << c.what << ": waits for " << c.pending << "\n";
    }
    if (c.not_applicable) {
      ++na;
      log << "  N/A     A." << c.number << " " << c.what << ": " << c.not_applicable << "\n";
    }
  }
  for (const NumericalRef& n : numerical()) {
    if (n.pending) log << "  PENDING " << n.what << ": waits for " << n.pending << "\n";
  }
  std::cout << "RELIABILITY.md A: " << covered << " cases covered (some in part), " << pending
            << " with pending parts, " << na << " not applicable\n"
            << log.str();
  EXPECT_GE(covered, 65);
}

// ---------------------------------------------------------------------------------------------
// Library-level rows

TEST(Zlib, IsAtLeast1_2_13AndReadsEveryOptionalHeaderField) {
  // CVE-2022-37434 (a heap overflow on a large FEXTRA field in inflateGetHeader) is fixed in
  // 1.2.12.1 and later; Debian 12 ships 1.2.13. Checked at run time: the library loaded, not the
  // header compiled against.
  int major = 0, minor = 0, patch = 0;
  ASSERT_EQ(std::sscanf(zlibVersion(), "%d.%d.%d", &major, &minor, &patch), 3) << zlibVersion();
  EXPECT_GE(major * 10000 + minor * 100 + patch, 1 * 10000 + 2 * 100 + 13) << zlibVersion();
}

TEST(Numerics, QuietNanIsNanInThisBuild) {
  // Under -ffast-math, isnan may be folded to false and every finiteness check would be dead.
  volatile float nan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_TRUE(std::isnan(nan));
  EXPECT_FALSE(std::isfinite(nan));
  EXPECT_FALSE(nan == nan);
}

// ---------------------------------------------------------------------------------------------
// Command-line rows for the cases nothing else covered

class Files {
 public:
  static Files& get() {
    static Files f;
    return f;
  }
  fs::path data() const { return dir_.path() / "data"; }
  std::string at(const std::string& name) const { return (data() / name).string(); }
  fs::path out_dir(const std::string& name) const {
    fs::path p = dir_.path() / "out" / name;
    fs::remove_all(p);
    fs::create_directories(p);
    return p;
  }
  RunResult run(const std::vector<std::string>& args) const {
    return cli_test::run_process(BACKPROP_CLI, args, dir_.path() / "captures");
  }

 private:
  Files() {
    fs::create_directories(data() / "adir");
    fs::create_directories(dir_.path() / "captures");
    std::string blobs = "a,b,color\n";
    for (int i = 0; i < 30; ++i) {
      blobs += std::to_string(i % 5) + "," + std::to_string((i * 3) % 7) + "," +
               "xyz"[static_cast<std::size_t>(i % 3)] + "\n";
    }
    write_text(at("blobs.csv"), blobs);
    constexpr std::uint32_t kN = 30;
    Bytes pixels(kN * 16), labels(kN);
    for (std::size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<std::uint8_t>(i * 37);
    for (std::uint32_t i = 0; i < kN; ++i) labels[i] = static_cast<std::uint8_t>(i % 3);
    write_bytes(at("imgs.idx"), idx_bytes(0x08, {kN, 4, 4}, pixels));
    write_bytes(at("labs.idx"), idx_bytes(0x08, {kN}, labels));
    write_bytes(at("imgs9.idx"), idx_bytes(0x08, {kN, 3, 3}, Bytes(kN * 9, 7)));
    write_bytes(at("imgs2x8.idx"), idx_bytes(0x08, {kN, 2, 8}, pixels));
    write_bytes(at("imgs_2p31.idx"), idx_bytes(0x08, {0x80000000u, 1}, Bytes(64, 1)));
    Bytes f32_labels;
    for (std::uint32_t i = 0; i < kN; ++i) cli_test::put_be32(f32_labels, 0x3F800000u);  // 1.0f
    write_bytes(at("labs_f32.idx"), idx_bytes(0x0D, {kN}, f32_labels));
    Bytes f32_pixels;
    for (std::uint32_t i = 0; i < kN * 16; ++i) {
      cli_test::put_be32(f32_pixels, i == 21 ? 0x7FC00000u : 0x3F000000u);  // NaN at image 1
    }
    write_bytes(at("imgs_nan.idx"), idx_bytes(0x0D, {kN, 4, 4}, f32_pixels));
    const RunResult r = run({"train", "--train", at("blobs.csv"), "--save", at("blobs.safetensors"),
                             "--epochs", "1", "--hidden", "4", "--threads", "1", "--quiet"});
    if (!r.exited || r.exit_code != 0) throw std::runtime_error("fixture model: " + r.describe());
    // The same model with one weight NaN (written as bytes: the writer refuses NaN).
    Safetensors st =
        parse_safetensors(cli_test::read_bytes(at("blobs.safetensors")), "fixture", {});
    bool poisoned = false;
    for (Tensor& t : st.tensors) {
      if (!poisoned && t.dtype == "F32" && t.name.find("weight") != std::string::npos) {
        const float nan = std::numeric_limits<float>::quiet_NaN();
        std::memcpy(t.data.data() + 4, &nan, sizeof nan);
        poisoned = true;
      }
    }
    if (!poisoned) throw std::runtime_error("fixture model: no F32 weight tensor");
    write_bytes(at("nan_weight.safetensors"), serialize_safetensors(st));
    // A folder holding only what a crash inside a checkpoint write leaves: a temporary (here
    // with a complete checkpoint's bytes, which must not matter).
    fs::create_directories(data() / "only_tmp");
    write_bytes(data() / "only_tmp" / "checkpoint-000003-000000000.safetensors.tmp.Ab12Cd",
                cli_test::read_bytes(at("blobs.safetensors")));
  }
  TempDir dir_;
};

struct CliRow {
  const char* name;
  std::vector<std::string> args;  // {D}: the data folder, {O}: this row's (empty) output folder
  int exit_code;
  std::vector<std::string> stderr_has;
};

void PrintTo(const CliRow& r, std::ostream* os) {
  *os << r.name;
}

// train ... --save {O}/m.safetensors --epochs 1 --threads 1, unless the row sets those itself.
std::vector<std::string> train(std::vector<std::string> args) {
  std::vector<std::string> out = {"train"};
  out.insert(out.end(), args.begin(), args.end());
  for (const auto& [flag, value] : std::vector<std::pair<std::string, std::string>>{
           {"--save", "{O}/m.safetensors"}, {"--epochs", "1"}, {"--threads", "1"}}) {
    if (std::find(args.begin(), args.end(), flag) == args.end()) {
      out.push_back(flag);
      out.push_back(value);
    }
  }
  return out;
}

std::vector<std::string> blobs(std::vector<std::string> flags) {
  flags.insert(flags.begin(), {"--train", "{D}/blobs.csv"});
  return train(flags);
}

std::vector<std::string> images(const std::string& file, std::vector<std::string> flags = {}) {
  flags.insert(flags.begin(), {"--train", "{D}/" + file, "--labels", "{D}/labs.idx"});
  return train(flags);
}

const std::vector<CliRow>& cli_rows() {
  static const std::vector<CliRow> rows = {
      // A.9: 2^31 x 1 u8 declared in a 76-byte file.
      {"IdxDimensionOf2To31",
       images("imgs_2p31.idx"),
       1,
       {"imgs_2p31.idx: byte 12", "2147483648 x 1 u8", "truncated"}},
      {"IdxFloatLabels",
       train({"--train", "{D}/imgs.idx", "--labels", "{D}/labs_f32.idx"}),
       1,
       {"labs_f32.idx", "integer element type", "f32"}},
      {"IdxTestImagesOfAnotherWidth",
       images("imgs.idx", {"--test", "{D}/imgs9.idx", "--test-labels", "{D}/labs.idx"}),
       1,
       {"imgs9.idx", "9 features", "16"}},
      {"IdxTestImagesOfAnotherShape",
       images("imgs.idx", {"--test", "{D}/imgs2x8.idx", "--test-labels", "{D}/labs.idx"}),
       1,
       {"imgs2x8.idx", "2 x 8", "4 x 4"}},
      {"IdxNanPixel", images("imgs_nan.idx"), 1, {"imgs_nan.idx", "image 1, value 5", "nan"}},
      {"DevZeroAsTrainingData",
       train({"--train", "/dev/zero"}),
       1,
       {"/dev/zero", "character device", "regular file"}},
      {"NoHeaderOnAHeadedFile",
       blobs({"--no-header"}),
       1,
       {"blobs.csv:1:1", "expected a number", "'a'"}},
      {"EvalWithoutData",
       {"eval", "--model", "{D}/blobs.safetensors"},
       2,
       {"eval needs data", "--test"}},
      {"PredictWithoutInput", {"predict", "--model", "{D}/blobs.safetensors"}, 2, {"--input"}},
      {"TrainFlagWithoutItsValue", {"train", "--train"}, 2, {"--train"}},
      {"LearningRateWithTrailingText", blobs({"--lr", "0.1x"}), 2, {"--lr", "'0.1x'"}},
      {"IntegerFlagInExponentNotation", blobs({"--epochs", "1e3"}), 2, {"--epochs", "'1e3'"}},
      {"EmptyIntegerFlag", blobs({"--epochs", ""}), 2, {"--epochs"}},
      {"LearningRateInfinite", blobs({"--lr", "inf"}), 2, {"--lr", "'inf'"}},
      {"EpochsZero", blobs({"--epochs", "0"}), 2, {"--epochs", "'0'"}},
      {"ThreadsNegative", blobs({"--threads", "-1"}), 2, {"--threads", "'-1'"}},
      {"ThreadsHuge", blobs({"--threads", "99999"}), 2, {"--threads", "'99999'"}},
      {"HiddenWidthZero", blobs({"--hidden", "0"}), 2, {"--hidden", "'0'", "from 1"}},
      // A.74: 2^48 parameters are refused from the widths alone, before the data is read.
      {"ParametersOverTheCap", blobs({"--hidden", "16777216,16777216"}), 2, {"parameters", "2^34"}},
      {"WidthOver2To24",
       blobs({"--hidden", "2147483647,2147483647"}),
       2,
       {"--hidden", "'2147483647,2147483647'", "16777216"}},
      {"LogIsADirectory", blobs({"--log", "{D}/adir"}), 2, {"--log", "adir", "directory"}},
      {"HeaderAndNoHeader", blobs({"--header", "--no-header"}), 2, {"--header", "--no-header"}},
      {"LayersAndHidden",
       blobs({"--layers", "2,4,3", "--hidden", "8"}),
       2,
       {"--layers", "--hidden"}},
      {"StandardizeAndNoStandardize",
       blobs({"--standardize", "--no-standardize"}),
       2,
       {"--standardize", "--no-standardize"}},
      // A.78: a path from a library error is echoed on one line, control bytes as \xNN.
      {"NewlineInPath",
       train({"--train", "{D}/no\nsuch.csv"}),
       1,
       {"no\\x0Asuch.csv", "No such file"}},
      {"EscapeSequenceInAPath",
       train({"--train", "{D}/x\x1b[31mred.csv"}),
       1,
       {"x\\x1B[31mred.csv", "No such file"}},
      // A.63: a folder whose only checkpoint-like file is a temporary left by a crash.
      {"ResumeFromAFolderHoldingOnlyATemporary",
       blobs({"--resume", "{D}/only_tmp"}),
       1,
       {"only_tmp", "no valid checkpoint", "none found"}},
      {"InitFromWithHidden",
       blobs({"--init-from", "{D}/blobs.safetensors", "--hidden", "8"}),
       2,
       {"--init-from", "--hidden"}},
      // B.4.6: a NaN weight never reaches training: the model loader refuses it.
      {"InitFromAModelWithANanWeight",
       blobs({"--init-from", "{D}/nan_weight.safetensors"}),
       1,
       {"nan_weight.safetensors", "non-finite value"}},
      {"EscapeSequenceInAFlagValue",
       blobs({"--hidden", "8,\x1b[31mred"}),
       2,
       {"--hidden", "\\x1B[31mred"}},
  };
  return rows;
}

std::vector<std::string> with_paths(std::vector<std::string> args, const std::string& d,
                                    const std::string& o) {
  for (std::string& a : args) {
    for (const auto& [key, value] : {std::pair<std::string, std::string>{"{D}", d}, {"{O}", o}}) {
      for (std::size_t at; (at = a.find(key)) != std::string::npos;) a.replace(at, 3, value);
    }
  }
  return args;
}

class CatalogueCli : public testing::TestWithParam<CliRow> {};

TEST_P(CatalogueCli, FailsCleanly) {
  const CliRow& row = GetParam();
  Files& files = Files::get();
  const fs::path out = files.out_dir(row.name);
  const std::vector<std::string> data_before = list_dir(files.data());
  const std::vector<std::string> args = with_paths(row.args, files.data().string(), out.string());
  const RunResult r = files.run(args);
  SCOPED_TRACE("backprop " + testing::PrintToString(args) + "\n" + r.describe());

  ASSERT_FALSE(r.timed_out);
  ASSERT_TRUE(r.exited) << "killed by signal " << r.term_signal;
  EXPECT_EQ(r.exit_code, row.exit_code);
  ASSERT_FALSE(r.err.empty());
  EXPECT_EQ(r.err.back(), '\n');
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "one line on stderr";
  EXPECT_EQ(r.err.rfind("backprop " + row.args[0] + ": error: ", 0), 0u);
  for (const std::string& part : row.stderr_has) {
    EXPECT_NE(r.err.find(part), std::string::npos) << "stderr lacks: " << part;
  }
  EXPECT_EQ(r.out, "");
  EXPECT_TRUE(list_dir(out).empty()) << "an output file was written";
  EXPECT_EQ(list_dir(files.data()), data_before);
}

INSTANTIATE_TEST_SUITE_P(Rows, CatalogueCli, testing::ValuesIn(cli_rows()),
                         [](const testing::TestParamInfo<CliRow>& row) {
                           return std::string(row.param.name);
                         });

// ---------------------------------------------------------------------------------------------
// Checkpoint rows (A.61-A.69): a valid checkpoint changed one way each, resealed with a correct
// checksum (fuzz/checkpoint_reseal.hpp) unless the row is about the checksum, then read as
// --resume reads it: parse_checkpoint, then the optimizer it names given the state.

// A small checkpoint of an Adam run: two steps taken, mid-epoch, with best weights and history.
struct CheckpointBase {
  Model model{ModelSpec{.layers = {3, 5, 2}}};
  ModelInfo info;
  std::unique_ptr<Optimizer> optimizer = make_optimizer({.kind = "adam"});
  TrainState state;

  CheckpointBase() {
    model.init(Init::kXavier, 4);
    info.class_names = {"no", "yes"};
    info.feature_names = {"a", "b", "c"};
    Model grad = model;
    Rng rng(1);
    for (int step = 0; step < 2; ++step) {
      for (float& g : grad.params()) g = static_cast<float>(rng.normal());
      optimizer->step(model.params(), grad.params());
    }
    state.epoch = 1;
    state.batch = 1;
    state.order = {4, 1, 3, 0, 2};
    state.shuffle_rng = Rng(5).state();
    state.dropout_rng = Rng(6).state();
    state.best_params.assign(model.params().begin(), model.params().end());
    EpochStats e;
    e.epoch = 1;
    e.train = {5, 0.5, 0.8, kNoValue};
    e.learning_rate = 0.001;
    state.history.push_back(e);
  }
  std::vector<std::uint8_t> bytes() const {
    return serialize_checkpoint(model, info, *optimizer, state, R"({"lr":0.001})", "xxh3-128:ab");
  }
};

Tensor& tensor_named(Safetensors& st, const std::string& name) {
  for (Tensor& t : st.tensors) {
    if (t.name == name) return t;
  }
  throw std::runtime_error("no tensor " + name);
}

// Edits the JSON of the "state" metadata entry.
std::function<void(Safetensors&)> edit_state(std::function<void(nlohmann::json&)> f) {
  return [f](Safetensors& st) {
    nlohmann::json j = nlohmann::json::parse(st.metadata.at("state"));
    f(j);
    st.metadata["state"] = j.dump();
  };
}

void set_float(Tensor& t, std::size_t i, float v) {
  std::memcpy(t.data.data() + i * sizeof v, &v, sizeof v);
}

struct CheckpointRow {
  const char* name;
  std::function<void(Safetensors&)> change;
  bool reseal;
  ErrorCode code;
  std::vector<std::string> message_has;
};

void PrintTo(const CheckpointRow& r, std::ostream* os) {
  *os << r.name;
}

const std::vector<CheckpointRow>& checkpoint_rows() {
  using J = nlohmann::json;
  static const std::vector<CheckpointRow> rows = {
      {"A61NoFormatMarker",
       [](Safetensors& st) { st.metadata.erase("format"); },
       true,
       ErrorCode::kFormat,
       {"ckpt.safetensors: ", "not a backprop checkpoint"}},
      {"A61NewerFormatVersion",
       [](Safetensors& st) { st.metadata["format_version"] = "2"; },
       true,
       ErrorCode::kFormat,
       {"format_version '2'", "reads version 1"}},
      {"A62ByteFlippedInTheModel",
       [](Safetensors& st) { tensor_named(st, "model").data.back() ^= 0x01; },
       false,
       ErrorCode::kFormat,
       {"ckpt.safetensors: ", "checksum mismatch"}},
      {"A64MomentShorterThanTheParameters",
       [](Safetensors& st) {
         Tensor& t = tensor_named(st, "optimizer.exp_avg");
         t.data.erase(t.data.end() - 4, t.data.end());  // one float fewer
         t.shape[0] -= 1;
       },
       true,
       ErrorCode::kData,
       {"adam state", "'exp_avg' holds", "the model has"}},
      {"A64MomentMissing",
       [](Safetensors& st) {
         std::erase_if(st.tensors,
                       [](const Tensor& t) { return t.name == "optimizer.exp_avg_sq"; });
       },
       true,
       ErrorCode::kData,
       {"adam state", "'exp_avg_sq' is missing"}},
      {"A64UnknownOptimizerEntry",
       [](Safetensors& st) {
         Tensor t = tensor_named(st, "optimizer.exp_avg");
         t.name = "optimizer.momentum_buffer";
         st.tensors.push_back(t);
       },
       true,
       ErrorCode::kData,
       {"adam state", "unexpected entry 'momentum_buffer'"}},
      {"A65OptimizerNameNotAName",
       [](Safetensors& st) { st.metadata["optimizer"] = "adam\x1b[2J"; },
       true,
       ErrorCode::kFormat,
       {"optimizer 'adam\\x1B[2J' is not a name"}},
      {"A66AdamStepZeroWithMoments",
       [](Safetensors& st) { st.metadata["optimizer_counters"] = R"({"step":"0"})"; },
       true,
       ErrorCode::kData,
       {"adam state", "step 0 is not a valid count"}},
      {"A66CounterOver2To62",
       [](Safetensors& st) {
         st.metadata["optimizer_counters"] = R"({"step":"4611686018427387905"})";
       },
       true,
       ErrorCode::kFormat,
       {"counter 'step' is too large"}},
      {"A66CounterNegative",
       [](Safetensors& st) { st.metadata["optimizer_counters"] = R"({"step":"-1"})"; },
       true,
       ErrorCode::kFormat,
       {"expected an unsigned integer", "'-1'"}},
      {"A66FractionalBatch",
       edit_state([](J& j) { j["batch"] = 1.5; }),
       true,
       ErrorCode::kFormat,
       {"expected an integer in range, found 1.5"}},
      {"A66EpochOf1e300",
       edit_state([](J& j) { j["epoch"] = 1e300; }),
       true,
       ErrorCode::kFormat,
       {"expected an integer in range"}},
      {"A66EpochWithoutItsHistory",
       edit_state([](J& j) { j["epoch"] = 7; }),
       true,
       ErrorCode::kFormat,
       {"the training state is inconsistent"}},
      {"A67RngAllZeros",
       edit_state([](J& j) {
         j["shuffle_rng"] = J::array({"0", "0", "0", "0"});
       }),
       true,
       ErrorCode::kFormat,
       {"an RNG state of all zeros"}},
      {"A67RngOfThreeWords",
       edit_state([](J& j) {
         j["dropout_rng"] = J::array({"1", "2", "3"});
       }),
       true,
       ErrorCode::kFormat,
       {"an RNG state is 4 numbers"}},
      {"A67RngWordNotANumber",
       edit_state([](J& j) {
         j["dropout_rng"] = J::array({"1", "2", "3", "x\n"});
       }),
       true,
       ErrorCode::kFormat,
       {"expected an unsigned integer", "'x\\x0A'"}},
      {"A68NegativeRowInTheOrder",
       [](Safetensors& st) {
         const std::int64_t minus_one = -1;
         std::memcpy(tensor_named(st, "state.order").data.data(), &minus_one, 8);
       },
       true,
       ErrorCode::kFormat,
       {"state.order holds a negative row"}},
      {"A69NanWeightInTheModel",
       [](Safetensors& st) {
         Tensor& m = tensor_named(st, "model");
         Safetensors inner = parse_safetensors(m.data, "inner", {});
         set_float(tensor_named(inner, "0.weight"), 2, std::numeric_limits<float>::quiet_NaN());
         m.data = serialize_safetensors(inner);
         m.shape = {m.data.size()};
       },
       true,
       ErrorCode::kModel,
       {"ckpt.safetensors (model)", "'0.weight'", "non-finite value"}},
      {"A69NanMoment",
       [](Safetensors& st) {
         set_float(tensor_named(st, "optimizer.exp_avg_sq"), 3,
                   std::numeric_limits<float>::quiet_NaN());
       },
       true,
       ErrorCode::kFormat,
       {"optimizer.exp_avg_sq value 3 is not finite"}},
      {"A69InfiniteBestWeight",
       [](Safetensors& st) {
         set_float(tensor_named(st, "state.best_params"), 0,
                   -std::numeric_limits<float>::infinity());
       },
       true,
       ErrorCode::kFormat,
       {"state.best_params value 0 is not finite"}},
      {"A69InfinitePlateauScale",
       edit_state([](J& j) { j["plateau_scale"] = "inf"; }),
       true,
       ErrorCode::kFormat,
       {"the training state is inconsistent"}},
  };
  return rows;
}

// What --resume does with a checkpoint's bytes before training: read it, then give the optimizer
// it names its state.
void read_for_resume(const std::vector<std::uint8_t>& bytes) {
  const Checkpoint c = parse_checkpoint(bytes, "ckpt.safetensors", {});
  std::unique_ptr<Optimizer> opt = make_optimizer({.kind = c.optimizer});
  opt->set_state(c.optimizer_state, c.model.model.params().size());
}

TEST(CatalogueCheckpoint, TheBaseCheckpointAndItsResealAreAccepted) {
  // Without this, every row below could pass for the wrong reason.
  CheckpointBase base;
  EXPECT_NO_THROW(read_for_resume(base.bytes()));
  EXPECT_NO_THROW(read_for_resume(
      fuzz::reseal_checkpoint(parse_safetensors(base.bytes(), "ckpt.safetensors", {}))));
}

class CatalogueCheckpoint : public testing::TestWithParam<CheckpointRow> {};

TEST_P(CatalogueCheckpoint, RejectedWithItsReason) {
  const CheckpointRow& row = GetParam();
  CheckpointBase base;
  Safetensors st = parse_safetensors(base.bytes(), "ckpt.safetensors", {});
  row.change(st);
  const std::vector<std::uint8_t> bytes =
      row.reseal ? fuzz::reseal_checkpoint(st) : serialize_safetensors(st);
  try {
    read_for_resume(bytes);
    ADD_FAILURE() << "accepted";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_EQ(e.code(), row.code) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
    for (const std::string& part : row.message_has) {
      EXPECT_NE(what.find(part), std::string::npos) << "message lacks: " << part << "\n" << what;
    }
    if (row.reseal) {
      EXPECT_EQ(what.find("checksum mismatch"), std::string::npos)
          << "the reseal failed: fuzz/checkpoint_reseal.hpp differs from the library";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Rows, CatalogueCheckpoint, testing::ValuesIn(checkpoint_rows()),
                         [](const testing::TestParamInfo<CheckpointRow>& row) {
                           return std::string(row.param.name);
                         });

TEST(CatalogueCheckpoint, OnlyATemporaryIsNoValidCheckpoint) {
  // A crash inside a write leaves NAME.tmp.XXXXXX: never read, even when its bytes are a complete
  // checkpoint, never listed.
  TempDir dir;
  write_bytes(dir.path() / "checkpoint-000002-000000000.safetensors.tmp.Xy12Zw",
              CheckpointBase().bytes());
  EXPECT_TRUE(list_checkpoints(dir.path().string()).empty());
  try {
    find_checkpoint(dir.path().string(), {}, nullptr);
    ADD_FAILURE() << "a temporary was taken for a checkpoint";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kData);
    EXPECT_NE(std::string(e.what()).find("no valid checkpoint (none found)"), std::string::npos)
        << e.what();
  }
}

TEST(CatalogueCheckpoint, ResumeRefusesAStateThatDoesNotFitTheData) {
  // The state is checked against the training rows before the first step (train's resume).
  Dataset ds;
  ds.n = 6;
  ds.n_features = 3;
  ds.sample_shape = {3};
  ds.feature_names = {"a", "b", "c"};
  ds.label_columns = {"k"};
  ds.class_names = {"no", "yes"};
  for (Index i = 0; i < ds.n * 3; ++i) ds.x_f32.push_back(static_cast<float>(i % 5) * 0.1f);
  ds.labels = {0, 1, 0, 1, 0, 1};
  TrainData d;
  d.data = &ds;
  d.train_rows = {0, 1, 2, 3, 4};
  d.pre = scale_preprocess(ds);
  const TrainOptions o{.epochs = 3, .batch_size = 2, .seed = 1};
  CheckpointBase base;
  const Checkpoint good = parse_checkpoint(base.bytes(), "ckpt.safetensors", {});
  struct Bad {
    const char* what;
    std::function<void(TrainState&)> change;
    const char* message;
  };
  const std::vector<Bad> bad = {
      {"the rows of another dataset",
       [](TrainState& s) {
         s.order = {0, 1, 2, 3, 5};
       },
       "row order does not match"},
      {"fewer rows",
       [](TrainState& s) {
         s.order = {0, 1, 2, 3};
       },
       "row order does not match"},
      {"a batch past the epoch's end (3 batches of 2)", [](TrainState& s) { s.batch = 4; },
       "batch is past the end of its epoch"},
      {"an epoch past the run's end",
       [](TrainState& s) {
         s.epoch = 4;
         s.history.resize(4);
       },
       "past the end of this run"},
  };
  {
    // The unchanged state resumes.
    Model m = good.model.model;
    auto opt = make_optimizer({.kind = "adam"});
    opt->set_state(good.optimizer_state, m.params().size());
    EXPECT_NO_THROW(train(m, *opt, d, o, {}, &good.state));
  }
  for (const Bad& b : bad) {
    SCOPED_TRACE(b.what);
    TrainState st = good.state;
    b.change(st);
    Model m = good.model.model;
    auto opt = make_optimizer({.kind = "adam"});
    opt->set_state(good.optimizer_state, m.params().size());
    test::expect_error([&] { train(m, *opt, d, o, {}, &st); }, ErrorCode::kData, {b.message});
  }
}
}  // namespace
}  // namespace backprop::reliability_test
