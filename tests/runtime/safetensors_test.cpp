// Tests for safetensors checkpoints: exact bytes, round trips, malformed files, atomic saves.
#include "runtime/checkpoint/safetensors.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "test_util.h"

namespace shoal {
namespace {

namespace fs = std::filesystem;

using Named = std::vector<std::pair<std::string, Tensor>>;

// 8-byte little-endian length prefix.
std::string le64(uint64_t n) {
  std::string s;
  for (int i = 0; i < 8; ++i) s += char(uint8_t(n >> (8 * i)));
  return s;
}

// Little-endian bytes of f32 values.
std::string f32Bytes(std::initializer_list<float> values) {
  std::string s;
  for (float v : values) {
    uint32_t bits;
    std::memcpy(&bits, &v, 4);
    for (int i = 0; i < 4; ++i) s += char(uint8_t(bits >> (8 * i)));
  }
  return s;
}

// A safetensors file from header JSON text and data bytes (header padded to 8 when asked).
std::string rawFile(std::string json, const std::string& data, bool pad = true) {
  if (pad) json.append((8 - json.size() % 8) % 8, ' ');
  return le64(json.size()) + json + data;
}

std::string encodeOk(const Named& tensors, const std::map<std::string, std::string>& meta = {}) {
  auto bytes = encodeSafetensors(tensors, meta);
  EXPECT_TRUE(bytes) << bytes.error().message();
  return bytes ? *bytes : "";
}

// The message of a failed load of `bytes` written to DIR/name.
std::string loadError(const std::string& path, const std::string& bytes) {
  test::writeFile(path, bytes);
  auto f = loadSafetensors(path);
  EXPECT_FALSE(f) << path << " unexpectedly loaded";
  return f ? "" : f.error().message();
}

// --- exact bytes: the writer must match the format (vectors from the reference implementation)

TEST(SafetensorsBytes, SingleTensorNeedsNoPadding) {
  Tensor t = Tensor::fromDoubles(DType::F32, {1, 2, 3}, std::vector<double>{0, 1, 2, 3, 4, 5});
  std::string want = le64(64) + R"({"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}})" +
                     f32Bytes({0, 1, 2, 3, 4, 5});
  ASSERT_EQ(want.size(), 8u + 64u + 24u);
  EXPECT_EQ(encodeOk({{"attn.0", t}}), want);
}

TEST(SafetensorsBytes, HeaderPaddedWithSpaces) {
  Tensor t = Tensor::fromDoubles(DType::F32, {1, 1, 2, 3}, std::vector<double>{0, 1, 2, 3, 4, 5});
  std::string want = le64(72) + R"({"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}})" +
                     std::string(7, ' ') + f32Bytes({0, 1, 2, 3, 4, 5});
  EXPECT_EQ(encodeOk({{"attn0", t}}), want);
}

TEST(SafetensorsBytes, EmptyAndMetadataOnly) {
  EXPECT_EQ(encodeOk({}), le64(8) + "{}      ");
  EXPECT_EQ(encodeOk({}, {{"framework", "pt"}}), le64(40) + R"({"__metadata__":{"framework":"pt"}})" + "     ");
}

TEST(SafetensorsBytes, TensorsInWrittenOrderAfterMetadata) {
  Tensor b = Tensor::fromDoubles(DType::U8, {3}, std::vector<double>{1, 2, 250});
  Tensor a = Tensor::fromDoubles(DType::I64, {}, std::vector<double>{-2});
  std::string json =
      R"({"__metadata__":{"epoch":"5","format":"pt"},"b":{"dtype":"U8","shape":[3],"data_offsets":[0,3]},)"
      R"("a":{"dtype":"I64","shape":[],"data_offsets":[3,11]}})";
  ASSERT_EQ(json.size(), 149u);
  std::string want = le64(152) + json + "   " + "\x01\x02\xfa" + std::string("\xfe\xff\xff\xff\xff\xff\xff\xff", 8);
  EXPECT_EQ(encodeOk({{"b", b}, {"a", a}}, {{"format", "pt"}, {"epoch", "5"}}), want);
}

TEST(SafetensorsBytes, ReadsUnpaddedReferenceFile) {
  // The reference implementation's documentation example: a 60-byte (unpadded) header.
  std::string bytes = le64(60) + R"({"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}})" +
                      std::string(16, '\0');
  auto f = decodeSafetensors(bytes, "doc.safetensors");
  ASSERT_TRUE(f) << f.error().message();
  ASSERT_EQ(f->tensors.size(), 1u);
  EXPECT_EQ(f->tensors[0].first, "test");
  EXPECT_EQ(f->tensors[0].second.type(), (TensorType{DType::I32, {2, 2}}));
  EXPECT_EQ(f->tensors[0].second.toDoubles(), (std::vector<double>{0, 0, 0, 0}));
  EXPECT_TRUE(f->metadata.empty());
}

TEST(SafetensorsBytes, LoadOrdersTensorsByOffset) {
  // Keys in the JSON need not be in data order (the reference writer sorts by dtype, name).
  std::string json = R"({"second":{"dtype":"U8","shape":[1],"data_offsets":[4,5]},)"
                     R"("first":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  auto f = decodeSafetensors(rawFile(json, f32Bytes({2.5f}) + "\x09"), "x");
  ASSERT_TRUE(f) << f.error().message();
  ASSERT_EQ(f->tensors.size(), 2u);
  EXPECT_EQ(f->tensors[0].first, "first");
  EXPECT_EQ(f->tensors[0].second.at(0), 2.5);
  EXPECT_EQ(f->tensors[1].first, "second");
  EXPECT_EQ(f->tensors[1].second.at(0), 9);
  ASSERT_NE(f->find("second"), nullptr);
  EXPECT_EQ(f->find("second")->dtype(), DType::U8);
  EXPECT_EQ(f->find("third"), nullptr);
}

// --- round trip ------------------------------------------------------------------------------

TEST(Safetensors, RoundTripsEveryDtype) {
  std::vector<double> w(32 * 9);
  for (size_t i = 0; i < w.size(); ++i) w[i] = 0.01 * double(i) - 1.3;
  Named tensors = {
      {"c1.weight", Tensor::fromDoubles(DType::F32, {32, 1, 3, 3}, w)},
      {"c1.bias", Tensor::fromDoubles(DType::F32, {32}, std::vector<double>(32, 0.25))},
      {"f64", Tensor::fromDoubles(DType::F64, {2, 2}, std::vector<double>{1e-300, -0.1, 3.0, 1e300})},
      {"i32", Tensor::fromDoubles(DType::I32, {3}, std::vector<double>{-2147483648.0, 0, 2147483647.0})},
      {"i64", Tensor::fromDoubles(DType::I64, {2}, std::vector<double>{-1099511627776.0, 9007199254740992.0})},
      {"u8", Tensor::fromDoubles(DType::U8, {2, 1, 2}, std::vector<double>{0, 1, 128, 255})},
      {"bool", Tensor::fromDoubles(DType::Bool, {3}, std::vector<double>{1, 0, 1})},
      {"step", Tensor::fromDoubles(DType::F32, {}, std::vector<double>{3.5})},
      {"empty", Tensor(DType::F32, {0, 4})},
  };
  std::map<std::string, std::string> meta = {{"format", "pt"}, {"shoal.model", "mnist_cnn"}, {"note", "ünïcode"}};
  std::string path = test::tempDir() + "/model.safetensors";
  auto saved = saveSafetensors(path, tensors, meta);
  ASSERT_TRUE(saved) << saved.error().message();

  auto f = loadSafetensors(path);
  ASSERT_TRUE(f) << f.error().message();
  EXPECT_EQ(f->metadata, meta);
  ASSERT_EQ(f->tensors.size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& [wantName, want] = tensors[i];
    const auto& [gotName, got] = f->tensors[i];
    EXPECT_EQ(gotName, wantName);
    EXPECT_EQ(got.type(), want.type()) << wantName;
    EXPECT_EQ(std::memcmp(got.raw(), want.raw(), want.byteSize()), 0) << wantName;
  }
  EXPECT_EQ(f->find("step")->at(0), 3.5);
  EXPECT_EQ(f->find("i64")->data<int64_t>()[1], int64_t(1) << 53);
  // The data section starts 8-byte aligned.
  std::string bytes = test::readFile(path);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ(n % 8, 0u);
}

// --- malformed files -------------------------------------------------------------------------

TEST(SafetensorsErrors, HeaderLength) {
  std::string dir = test::tempDir();
  EXPECT_EQ(loadError(dir + "/short", "abc"),
            dir + "/short: truncated file: 3 bytes, a safetensors file starts with an 8-byte header length");
  EXPECT_EQ(loadError(dir + "/empty", ""),
            dir + "/empty: truncated file: 0 bytes, a safetensors file starts with an 8-byte header length");
  EXPECT_EQ(loadError(dir + "/long", le64(1000) + "{}      " + "1234"),
            dir + "/long: header length 1000 is larger than the file (20 bytes)");
  EXPECT_EQ(loadError(dir + "/huge", le64(~uint64_t(0)) + "{}"),
            dir + "/huge: header length 18446744073709551615 is larger than the file (10 bytes)");
}

TEST(SafetensorsErrors, HeaderNotJson) {
  std::string dir = test::tempDir();
  std::string msg = loadError(dir + "/j", rawFile(R"({"a": )", ""));
  // The tail is nlohmann-json's own wording, which may change between its versions.
  EXPECT_TRUE(msg.starts_with(dir + "/j: header is not JSON: parse error at line 1, column")) << msg;
  EXPECT_EQ(loadError(dir + "/arr", rawFile("[1,2]", "")), dir + "/arr: header is not a JSON object");
}

TEST(SafetensorsErrors, DeepJsonIsRefusedBeforeParsing) {
  // Issue "Hardening" 3: a __metadata__ value nested 100,000 arrays deep overflowed the stack
  // when the error message dumped it. The header's depth is bounded (64) before parsing.
  std::string dir = test::tempDir();
  std::string deep = R"({"__metadata__":)" + std::string(100000, '[') + std::string(100000, ']') + "}";
  EXPECT_EQ(loadError(dir + "/deep", rawFile(deep, "")), dir + "/deep: header nests JSON more than 64 levels deep");
  std::string unclosed = R"({"w":{"dtype":"F32","shape":)" + std::string(100000, '{');
  EXPECT_EQ(loadError(dir + "/open", rawFile(unclosed, "")), dir + "/open: header nests JSON more than 64 levels deep");
  // Brackets inside strings do not count; 63 levels of metadata nesting parse (and are refused
  // for not being a string, with the value cut short in the message).
  std::string quoted = R"({"__metadata__":{"k":")" + std::string(1000, '[') + R"("}})";
  EXPECT_TRUE(decodeSafetensors(rawFile(quoted, ""), "q")) << "brackets in a string are not nesting";
  std::string deepish = R"({"__metadata__":{"k":)" + std::string(62, '[') + std::string(62, ']') + "}}";
  auto r = decodeSafetensors(rawFile(deepish, ""), "d");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), "d: __metadata__ must map strings to strings ('k' is " + std::string(62, '[') +
                                     std::string(15, ']') + "...)");
  // The format caps the header at 100 MB.
  auto big = decodeSafetensors(le64(100000001) + std::string(100000001, ' '), "big");
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().message(), "big: header length 100000001 is over the format's limit of 100000000 bytes");
}

TEST(Safetensors, UnusedTensorsNote) {
  SafetensorsFile file;
  for (const char* name : {"d1.weight", "d1.bias", "d1.weight.m", "d1.weight.v", "extra", "other.velocity"})
    file.tensors.emplace_back(name, Tensor(DType::F32, {1}));
  std::set<std::string> model = {"d1.weight", "d1.bias"};
  // Optimizer state of the model's params is expected in a training checkpoint: named only when verbose.
  EXPECT_EQ(unusedTensorsNote("w.safetensors", file, model, /*verbose=*/false),
            "note: w.safetensors: ignored 2 tensors the model does not have: extra, other.velocity");
  EXPECT_EQ(unusedTensorsNote("w.safetensors", file, model, /*verbose=*/true),
            "note: w.safetensors: ignored 4 tensors the model does not have: d1.weight.m, d1.weight.v, extra, "
            "other.velocity");
  model.insert({"extra", "other.velocity"});
  EXPECT_EQ(unusedTensorsNote("w.safetensors", file, model, /*verbose=*/false), "");
}

TEST(SafetensorsErrors, MissingOrBadFields) {
  std::string dir = test::tempDir();
  std::string p = dir + "/f";
  EXPECT_EQ(loadError(p, rawFile(R"({"w":{"shape":[1],"data_offsets":[0,4]}})", "1234")),
            p + ": tensor 'w': missing field 'dtype'");
  EXPECT_EQ(loadError(p, rawFile(R"({"w":{"dtype":"F32","data_offsets":[0,4]}})", "1234")),
            p + ": tensor 'w': missing field 'shape'");
  EXPECT_EQ(loadError(p, rawFile(R"({"w":{"dtype":"F32","shape":[1]}})", "1234")),
            p + ": tensor 'w': missing field 'data_offsets'");
  EXPECT_EQ(loadError(p, rawFile(R"({"w":[1]})", "")), p + ": tensor 'w': entry is not a JSON object");
  EXPECT_EQ(loadError(p, rawFile(R"({"w":{"dtype":4,"shape":[1],"data_offsets":[0,4]}})", "1234")),
            p + ": tensor 'w': 'dtype' must be a string, got 4");
  EXPECT_EQ(loadError(p, rawFile(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", "1234")),
            p + ": tensor 'w': 'shape' must be a list of non-negative integers, got [-1]");
  EXPECT_EQ(loadError(p, rawFile(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", "1234")),
            p + ": tensor 'w': 'data_offsets' must be [begin, end] (non-negative integers), got [0]");
  EXPECT_EQ(loadError(p, rawFile(R"({"__metadata__":{"k":1}})", "")),
            p + ": __metadata__ must map strings to strings ('k' is 1)");
}

TEST(SafetensorsErrors, UnknownDtype) {
  std::string dir = test::tempDir();
  std::string p = dir + "/d";
  EXPECT_EQ(loadError(p, rawFile(R"({"w":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}})", "1234")),
            p + ": tensor 'w': unknown dtype 'F33'");
  EXPECT_EQ(loadError(p, rawFile(R"({"w":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]}})", "1234")),
            p + ": tensor 'w': dtype 'F8_E4M3' is not supported (shoal reads F32, F64, I32, I64, U8, BOOL, F16, BF16, "
                "I8, I16, U16, U32, U64)");
}

TEST(SafetensorsErrors, DataOffsets) {
  std::string dir = test::tempDir();
  std::string p = dir + "/o";
  // Size does not match shape x dtype (the message from the design brief).
  EXPECT_EQ(loadError(p, rawFile(R"({"c1.weight":{"dtype":"F32","shape":[32,1,3,3],"data_offsets":[0,100]}})",
                                 std::string(100, '\0'))),
            p + ": tensor 'c1.weight': data_offsets [0,100) hold 100 bytes, shape [32,1,3,3] F32 needs 1152");
  // Begin after end.
  EXPECT_EQ(loadError(p, rawFile(R"({"w":{"dtype":"U8","shape":[0],"data_offsets":[8,0]}})", "")),
            p + ": tensor 'w': data_offsets [8,0) begin after they end");
  // Overlapping tensors.
  EXPECT_EQ(loadError(p, rawFile(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                 R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                                 std::string(12, '\0'))),
            p + ": tensor 'b': data_offsets [4,12) overlap tensor 'a' [0,8)");
  // A hole between tensors, and unused bytes after the last one.
  EXPECT_EQ(loadError(p, rawFile(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                                 R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                                 std::string(12, '\0'))),
            p + ": bytes [4,8) of the data section belong to no tensor");
  EXPECT_EQ(loadError(p, rawFile(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", std::string(6, '\0'))),
            p + ": bytes [4,6) of the data section belong to no tensor");
  // Past the end of the data section.
  EXPECT_EQ(loadError(p, rawFile(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", std::string(8, '\0'))),
            p + ": truncated file: tensor 'a' has data_offsets [0,16) but the data section holds 8 bytes");
}

TEST(SafetensorsErrors, TruncatedFile) {
  std::string dir = test::tempDir();
  Named tensors = {{"w", Tensor::fromDoubles(DType::F32, {4}, std::vector<double>{1, 2, 3, 4})},
                   {"b", Tensor::fromDoubles(DType::F64, {2}, std::vector<double>{5, 6})}};
  std::string bytes = encodeOk(tensors);
  std::string p = dir + "/cut.safetensors";
  EXPECT_EQ(loadError(p, bytes.substr(0, bytes.size() - 10)),
            p + ": truncated file: tensor 'b' has data_offsets [16,32) but the data section holds 22 bytes");
  // Cut inside the header.
  std::string q = dir + "/cut2.safetensors";
  EXPECT_EQ(loadError(q, bytes.substr(0, 40)),
            q + ": header length " + std::to_string(bytes.size() - 8 - 32) + " is larger than the file (40 bytes)");
}

TEST(SafetensorsErrors, MissingFile) {
  std::string dir = test::tempDir();
  auto f = loadSafetensors(dir + "/none.safetensors");
  ASSERT_FALSE(f);
  EXPECT_EQ(f.error().message(), "cannot open '" + dir + "/none.safetensors': No such file or directory");
}

TEST(SafetensorsErrors, BadNamesOnSave) {
  std::string dir = test::tempDir();
  std::string p = dir + "/bad.safetensors";
  Tensor t(DType::F32, {1});
  auto dup = saveSafetensors(p, {{"w", t}, {"w", t}});
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error().message(), p + ": cannot save two tensors named 'w'");
  auto reserved = saveSafetensors(p, {{"__metadata__", t}});
  ASSERT_FALSE(reserved);
  EXPECT_EQ(reserved.error().message(), p + ": cannot save a tensor named '__metadata__' (reserved by the format)");
  auto empty = saveSafetensors(p, {{"", t}});
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().message(), p + ": cannot save a tensor with an empty name");
  auto utf8 = saveSafetensors(p, {{"w\xff", t}});
  ASSERT_FALSE(utf8);
  EXPECT_TRUE(utf8.error().message().starts_with(p + ": cannot save checkpoint: a tensor name or metadata string is "
                                                     "not valid UTF-8"))
      << utf8.error().message();
  EXPECT_TRUE(test::listDir(dir).empty()) << "nothing written on a failed save";
}

// --- atomic saves ----------------------------------------------------------------------------

TEST(SafetensorsAtomic, FailedWriteKeepsOldCheckpoint) {
  // A child process caps its file size, so the new checkpoint's write fails part-way.
  std::string dir = test::tempDir();
  std::string path = dir + "/model.safetensors";
  Named old = {{"w", Tensor::fromDoubles(DType::F32, {2}, std::vector<double>{1, 2})}};
  ASSERT_TRUE(saveSafetensors(path, old));
  std::string oldBytes = test::readFile(path);

  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(fds[0]);
    std::signal(SIGXFSZ, SIG_IGN);
    rlimit lim{4096, 4096};
    ::setrlimit(RLIMIT_FSIZE, &lim);
    auto r = saveSafetensors(path, {{"w", Tensor(DType::F32, {100000})}});
    std::string msg = r ? "ok" : r.error().message();
    (void)!::write(fds[1], msg.data(), msg.size());
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string msg;
  char buf[512];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) msg.append(buf, size_t(n));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);

  EXPECT_EQ(msg, "cannot write '" + path + "': File too large");
  EXPECT_EQ(test::readFile(path), oldBytes);
  auto f = loadSafetensors(path);
  ASSERT_TRUE(f) << f.error().message();
  EXPECT_EQ(f->tensors[0].second.toDoubles(), (std::vector<double>{1, 2}));
  EXPECT_EQ(test::listDir(dir), std::vector<std::string>{"model.safetensors"}) << "no temporary file left behind";
}

TEST(SafetensorsAtomic, UnwritableDirectoryKeepsOldCheckpoint) {
  if (::geteuid() == 0) GTEST_SKIP() << "root ignores directory permissions (FailedWriteKeepsOldCheckpoint covers it)";
  std::string dir = test::tempDir();
  std::string path = dir + "/model.safetensors";
  ASSERT_TRUE(saveSafetensors(path, {{"w", Tensor::fromDoubles(DType::U8, {1}, std::vector<double>{7})}}));
  std::string oldBytes = test::readFile(path);
  ::chmod(dir.c_str(), 0555);
  auto r = saveSafetensors(path, {{"w", Tensor::fromDoubles(DType::U8, {1}, std::vector<double>{8})}});
  ::chmod(dir.c_str(), 0755);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), "cannot write '" + path + "': cannot create temporary file: Permission denied");
  EXPECT_EQ(test::readFile(path), oldBytes);
}

TEST(SafetensorsAtomic, MissingDirectory) {
  std::string dir = test::tempDir();
  auto r = saveSafetensors(dir + "/no/model.safetensors", {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(),
            "cannot write '" + dir + "/no/model.safetensors': cannot create temporary file: No such file or directory");
}

// --- matching a checkpoint against the model -------------------------------------------------

TEST(CheckTensorMatches, ShapeAndDtype) {
  Tensor got(DType::F32, {64, 100});
  EXPECT_TRUE(checkTensorMatches("d1.weight", got, TensorType{DType::F32, {64, 100}}));
  auto shape = checkTensorMatches("d1.weight", got, TensorType{DType::F32, {64, 5408}});
  ASSERT_FALSE(shape);
  EXPECT_EQ(shape.error().message(), "checkpoint tensor 'd1.weight' has shape [64,100], the model expects [64,5408]");
  auto dtype = checkTensorMatches("d1.weight", got, TensorType{DType::F64, {64, 100}});
  ASSERT_FALSE(dtype);
  EXPECT_EQ(dtype.error().message(), "checkpoint tensor 'd1.weight' has dtype f32, the model expects f64");
  auto scalar = checkTensorMatches("step", Tensor(DType::I64, {1}), TensorType{DType::I64, {}});
  ASSERT_FALSE(scalar);
  EXPECT_EQ(scalar.error().message(), "checkpoint tensor 'step' has shape [1], the model expects []");
}

}  // namespace
}  // namespace shoal
