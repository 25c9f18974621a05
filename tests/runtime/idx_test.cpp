// Tests for the IDX reader and MNIST loader: the bundled data, hand-made files, corrupt files.
#include "runtime/data/idx.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <limits>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "test_util.h"

namespace shoal {
namespace {

namespace fs = std::filesystem;

std::string mnistDir() { return std::string(SHOAL_SOURCE_DIR) + "/data/mnist-10k"; }

// An IDX header: 0, 0, typecode, ndims, then big-endian u32 extents.
std::string idxHeader(uint8_t typecode, const std::vector<uint32_t>& dims) {
  std::string h = {'\0', '\0', char(typecode), char(dims.size())};
  for (uint32_t d : dims)
    for (int shift = 24; shift >= 0; shift -= 8) h += char(uint8_t(d >> shift));
  return h;
}

// Writes `bytes` gzip-compressed to `path` with zlib's gzFile API.
void writeGzip(const std::string& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, bytes.data(), unsigned(bytes.size())), int(bytes.size()));
  ASSERT_EQ(gzclose(f), Z_OK);
}

// The error message of a failed readIdx (or "" with a test failure when it succeeded).
std::string idxError(const std::string& path) {
  auto t = readIdx(path);
  EXPECT_FALSE(t) << path << " unexpectedly loaded";
  return t ? "" : t.error().message();
}

std::array<int, 10> classCounts(const Tensor& labels) {
  std::array<int, 10> counts{};
  for (int64_t i = 0; i < labels.numElements(); ++i) counts[size_t(labels.data<int64_t>()[i])]++;
  return counts;
}

// --- the bundled data set --------------------------------------------------------------------

TEST(Mnist, LoadsBundledTrainingSplit) {
  auto set = loadMnist(mnistDir(), /*train=*/true);
  ASSERT_TRUE(set) << set.error().message();
  EXPECT_EQ(set->images.type(), (TensorType{DType::U8, {8000, 1, 28, 28}}));
  EXPECT_EQ(set->labels.type(), (TensorType{DType::I64, {8000}}));
  // Class counts from the data README.
  EXPECT_EQ(classCounts(set->labels), (std::array<int, 10>{788, 899, 785, 846, 779, 686, 823, 854, 764, 776}));
  std::vector<int64_t> first(set->labels.data<int64_t>(), set->labels.data<int64_t>() + 10);
  EXPECT_EQ(first, (std::vector<int64_t>{3, 2, 0, 8, 6, 2, 5, 8, 0, 3}));

  // Pixels span 0..255; totals computed independently with Python's gzip module.
  const uint8_t* px = set->images.data<uint8_t>();
  uint64_t sum = 0, firstImageSum = 0;
  uint8_t lo = 255, hi = 0;
  for (int64_t i = 0; i < set->images.numElements(); ++i) {
    sum += px[i];
    if (i < 784) firstImageSum += px[i];
    lo = std::min(lo, px[i]);
    hi = std::max(hi, px[i]);
  }
  EXPECT_EQ(lo, 0);
  EXPECT_EQ(hi, 255);
  EXPECT_EQ(sum, 209601793u);
  EXPECT_EQ(firstImageSum, 25376u);
  // Row 14 of the first image (a "3"), columns 12..16.
  std::vector<int> row(px + 14 * 28 + 12, px + 14 * 28 + 17);
  EXPECT_EQ(row, (std::vector<int>{233, 252, 253, 252, 20}));
}

TEST(Mnist, LoadsBundledTestSplit) {
  auto set = loadMnist(mnistDir(), /*train=*/false);
  ASSERT_TRUE(set) << set.error().message();
  EXPECT_EQ(set->images.type(), (TensorType{DType::U8, {2000, 1, 28, 28}}));
  EXPECT_EQ(set->labels.type(), (TensorType{DType::I64, {2000}}));
  EXPECT_EQ(classCounts(set->labels), (std::array<int, 10>{213, 228, 206, 186, 201, 177, 191, 216, 180, 202}));
  std::vector<int64_t> first(set->labels.data<int64_t>(), set->labels.data<int64_t>() + 10);
  EXPECT_EQ(first, (std::vector<int64_t>{0, 9, 3, 0, 0, 3, 1, 4, 2, 5}));
  uint64_t sum = 0;
  for (int64_t i = 0; i < set->images.numElements(); ++i) sum += set->images.data<uint8_t>()[i];
  EXPECT_EQ(sum, 52544807u);
}

TEST(Idx, ReadsBundledFileDirectly) {
  auto labels = readIdx(mnistDir() + "/t10k-labels-idx1-ubyte.gz");
  ASSERT_TRUE(labels) << labels.error().message();
  EXPECT_EQ(labels->type(), (TensorType{DType::U8, {2000}}));
  EXPECT_EQ(labels->at(1), 9);
}

// --- hand-made files -------------------------------------------------------------------------

TEST(Idx, ReadsPlainAndGzippedU8) {
  std::string dir = test::tempDir();
  std::string bytes = idxHeader(0x08, {2, 3}) + std::string("\x00\x01\x7f\x80\xfe\xff", 6);
  test::writeFile(dir + "/a.idx", bytes);
  writeGzip(dir + "/a.idx.gz", bytes);
  // Detection is by content: a gzip file without the .gz suffix reads too.
  writeGzip(dir + "/b.idx", bytes);
  for (const char* name : {"/a.idx", "/a.idx.gz", "/b.idx"}) {
    auto t = readIdx(dir + name);
    ASSERT_TRUE(t) << name << ": " << t.error().message();
    EXPECT_EQ(t->type(), (TensorType{DType::U8, {2, 3}})) << name;
    EXPECT_EQ(t->toDoubles(), (std::vector<double>{0, 1, 127, 128, 254, 255})) << name;
  }
}

TEST(Idx, ReadsEveryTypecode) {
  std::string dir = test::tempDir();
  struct Case {
    uint8_t code;
    std::string payload;  // big-endian elements
    DType dtype;
    std::vector<double> values;
  };
  std::vector<Case> cases = {
      {0x09, std::string("\x80\xff\x00\x7f", 4), DType::I32, {-128, -1, 0, 127}},
      {0x0B, std::string("\x80\x00\xff\xfe\x01\x02\x00\x00", 8), DType::I32, {-32768, -2, 258, 0}},
      {0x0C, std::string("\x80\x00\x00\x00\xff\xff\xff\xff\x00\x01\x00\x00\x7f\xff\xff\xff", 16), DType::I32,
       {-2147483648.0, -1, 65536, 2147483647.0}},
      // 1.5, -2.25, 0, 1e-45 (the smallest denormal)
      {0x0D, std::string("\x3f\xc0\x00\x00\xc0\x10\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01", 16), DType::F32,
       {1.5, -2.25, 0, double(std::numeric_limits<float>::denorm_min())}},
      // 1.0, -0.1, 2^100, 0.5
      {0x0E,
       std::string("\x3f\xf0\x00\x00\x00\x00\x00\x00\xbf\xb9\x99\x99\x99\x99\x99\x9a"
                   "\x46\x30\x00\x00\x00\x00\x00\x00\x3f\xe0\x00\x00\x00\x00\x00\x00",
                   32),
       DType::F64, {1.0, -0.1, 1267650600228229401496703205376.0, 0.5}},
  };
  for (const Case& c : cases) {
    std::string bytes = idxHeader(c.code, {2, 2}) + c.payload;
    for (bool gz : {false, true}) {
      std::string path = dir + "/t" + std::to_string(c.code) + (gz ? ".gz" : "");
      if (gz) writeGzip(path, bytes); else test::writeFile(path, bytes);
      auto t = readIdx(path);
      ASSERT_TRUE(t) << path << ": " << t.error().message();
      EXPECT_EQ(t->type(), (TensorType{c.dtype, {2, 2}})) << path;
      EXPECT_EQ(t->toDoubles(), c.values) << path;
    }
  }
}

TEST(Idx, ReadsConcatenatedGzipMembers) {
  // `cat a.gz b.gz` is a valid gzip file holding the concatenation.
  std::string dir = test::tempDir();
  std::string bytes = idxHeader(0x08, {4}) + "\x01\x02\x03\x04";
  writeGzip(dir + "/p1.gz", bytes.substr(0, 6));
  writeGzip(dir + "/p2.gz", bytes.substr(6));
  test::writeFile(dir + "/cat.gz", test::readFile(dir + "/p1.gz") + test::readFile(dir + "/p2.gz"));
  auto t = readIdx(dir + "/cat.gz");
  ASSERT_TRUE(t) << t.error().message();
  EXPECT_EQ(t->toDoubles(), (std::vector<double>{1, 2, 3, 4}));
}

// --- malformed files: each next to the message it must produce --------------------------------

TEST(IdxErrors, BadMagic) {
  std::string dir = test::tempDir();
  test::writeFile(dir + "/m", std::string("\x01\x02\x08\x01\x00\x00\x00\x01\x05", 9));
  EXPECT_EQ(idxError(dir + "/m"), dir + "/m: not an IDX file (bad magic 0x01020801)");
  // Unknown typecode 0x07.
  test::writeFile(dir + "/t", idxHeader(0x07, {1}) + "x");
  EXPECT_EQ(idxError(dir + "/t"), dir + "/t: not an IDX file (bad magic 0x00000701)");
  // Gzipped text: the magic is checked on the decompressed bytes.
  writeGzip(dir + "/text.gz", "hello world");
  EXPECT_EQ(idxError(dir + "/text.gz"), dir + "/text.gz: not an IDX file (bad magic 0x68656c6c)");
  // A doubly gzipped file: the inner gzip header is not IDX.
  writeGzip(dir + "/inner.gz", idxHeader(0x08, {1}) + "x");
  writeGzip(dir + "/double.gz", test::readFile(dir + "/inner.gz"));
  EXPECT_EQ(idxError(dir + "/double.gz"), dir + "/double.gz: not an IDX file (bad magic 0x1f8b0800)");
}

TEST(IdxErrors, TruncatedHeader) {
  std::string dir = test::tempDir();
  test::writeFile(dir + "/h2", std::string("\x00\x00", 2));
  EXPECT_EQ(idxError(dir + "/h2"), dir + "/h2: truncated header: 2 bytes, an IDX header needs at least 4");
  test::writeFile(dir + "/h8", idxHeader(0x08, {8000, 28, 28}).substr(0, 8));
  EXPECT_EQ(idxError(dir + "/h8"),
            dir + "/h8: truncated header: magic 0x00000803 says 3 dimensions (16 header bytes), file has 8");
  writeGzip(dir + "/h8.gz", idxHeader(0x08, {8000, 28, 28}).substr(0, 8));
  EXPECT_EQ(idxError(dir + "/h8.gz"),
            dir + "/h8.gz: truncated header: magic 0x00000803 says 3 dimensions (16 header bytes), file has 8");
}

TEST(IdxErrors, TruncatedData) {
  std::string dir = test::tempDir();
  test::writeFile(dir + "/d", idxHeader(0x08, {8000, 28, 28}) + std::string(1234, '\x07'));
  EXPECT_EQ(idxError(dir + "/d"), dir + "/d: truncated: header says 8000x28x28 = 6272000 bytes of data, file has 1234");
  writeGzip(dir + "/d.gz", idxHeader(0x08, {8000, 28, 28}) + std::string(1234, '\x07'));
  EXPECT_EQ(idxError(dir + "/d.gz"),
            dir + "/d.gz: truncated: header says 8000x28x28 = 6272000 bytes of data, file has 1234");
  test::writeFile(dir + "/i", idxHeader(0x0C, {2, 3}) + "12345");
  EXPECT_EQ(idxError(dir + "/i"),
            dir + "/i: truncated: header says 2x3 i32 (4 bytes each) = 24 bytes of data, file has 5");
}

TEST(IdxErrors, TrailingBytes) {
  std::string dir = test::tempDir();
  test::writeFile(dir + "/t", idxHeader(0x08, {2, 2}) + "1234xyz");
  EXPECT_EQ(idxError(dir + "/t"), dir + "/t: trailing bytes after data: header says 2x2 = 4 bytes of data (3 extra)");
  writeGzip(dir + "/t.gz", idxHeader(0x08, {2, 2}) + "1234xyz");
  EXPECT_EQ(idxError(dir + "/t.gz"), dir + "/t.gz: trailing bytes after data: header says 2x2 = 4 bytes of data");
}

TEST(IdxErrors, ZeroOrHugeDimension) {
  std::string dir = test::tempDir();
  test::writeFile(dir + "/z", idxHeader(0x08, {3, 0, 2}));
  EXPECT_EQ(idxError(dir + "/z"), dir + "/z: dimension 1 is 0");
  test::writeFile(dir + "/n", idxHeader(0x08, {}));
  EXPECT_EQ(idxError(dir + "/n"), dir + "/n: IDX header has 0 dimensions");
  test::writeFile(dir + "/big", idxHeader(0x08, {65536, 65536, 4, 2}) + "x");
  EXPECT_EQ(idxError(dir + "/big"), dir + "/big: header says 65536x65536x4x2, more than 17179869184 bytes of data, "
                                          "the limit for a dataset file");
  // A header that claims 16 GiB (the limit) is accepted up to the point where the data runs out.
  test::writeFile(dir + "/lie", idxHeader(0x08, {65536, 65536, 4}) + "x");
  EXPECT_EQ(idxError(dir + "/lie"),
            dir + "/lie: truncated: header says 65536x65536x4 = 17179869184 bytes of data, file has 1");
}

TEST(IdxErrors, CorruptGzip) {
  std::string dir = test::tempDir();
  std::string bytes = idxHeader(0x08, {16, 16});
  for (int i = 0; i < 256; ++i) bytes += char(i * 7);
  writeGzip(dir + "/ok.gz", bytes);
  std::string gz = test::readFile(dir + "/ok.gz");

  // The CRC-32 in the gzip trailer (the last 8 bytes are CRC-32 and length) no longer matches.
  std::string badCrc = gz;
  badCrc[badCrc.size() - 8] ^= 0x55;
  test::writeFile(dir + "/crc.gz", badCrc);
  EXPECT_EQ(idxError(dir + "/crc.gz"), dir + "/crc.gz: corrupt gzip stream: incorrect data check");

  // Compression method byte (offset 2) is not deflate.
  std::string badMethod = gz;
  badMethod[2] = 7;
  test::writeFile(dir + "/method.gz", badMethod);
  EXPECT_EQ(idxError(dir + "/method.gz"), dir + "/method.gz: corrupt gzip stream: unknown compression method");

  // Cut in the middle of the deflate stream.
  test::writeFile(dir + "/cut.gz", gz.substr(0, gz.size() / 2));
  EXPECT_EQ(idxError(dir + "/cut.gz"), dir + "/cut.gz: corrupt gzip stream: unexpected end of file");

  // Only the gzip magic.
  test::writeFile(dir + "/magic.gz", "\x1f\x8b");
  EXPECT_EQ(idxError(dir + "/magic.gz"), dir + "/magic.gz: corrupt gzip stream: unexpected end of file");

  // Junk after a complete gzip member.
  test::writeFile(dir + "/junk.gz", gz + "junk");
  EXPECT_EQ(idxError(dir + "/junk.gz"), dir + "/junk.gz: trailing garbage after the gzip stream");
}

TEST(IdxErrors, EmptyMissingAndDirectory) {
  std::string dir = test::tempDir();
  test::writeFile(dir + "/empty", "");
  EXPECT_EQ(idxError(dir + "/empty"), dir + "/empty: empty file");
  writeGzip(dir + "/empty.gz", "");
  EXPECT_EQ(idxError(dir + "/empty.gz"), dir + "/empty.gz: empty file");
  EXPECT_EQ(idxError(dir + "/missing.idx"), "cannot open '" + dir + "/missing.idx': No such file or directory");
  EXPECT_EQ(idxError(dir), "cannot open '" + dir + "': Is a directory");
}

// --- the MNIST loader on hand-made directories ------------------------------------------------

TEST(MnistErrors, MissingDirectoryAndFiles) {
  std::string dir = test::tempDir();
  auto none = loadMnist(dir + "/nowhere", true);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().message(), "cannot open MNIST directory '" + dir + "/nowhere': No such file or directory");
  auto empty = loadMnist(dir, false);
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().message(), "MNIST data: neither '" + dir + "/t10k-images-idx3-ubyte' nor '" + dir +
                                         "/t10k-images-idx3-ubyte.gz' exists");
}

TEST(MnistErrors, CountsShapesAndLabels) {
  std::string dir = test::tempDir();
  std::string images = dir + "/train-images-idx3-ubyte", labels = dir + "/train-labels-idx1-ubyte";
  test::writeFile(images, idxHeader(0x08, {3, 2, 2}) + std::string(12, '\x01'));
  test::writeFile(labels, idxHeader(0x08, {2}) + std::string("\x01\x02", 2));
  auto mismatch = loadMnist(dir, true);
  ASSERT_FALSE(mismatch);
  EXPECT_EQ(mismatch.error().message(), "MNIST data: " + images + " has 3 images but " + labels + " has 2 labels");

  test::writeFile(labels, idxHeader(0x08, {3}) + std::string("\x01\x0a\x02", 3));
  auto badLabel = loadMnist(dir, true);
  ASSERT_FALSE(badLabel);
  EXPECT_EQ(badLabel.error().message(), labels + ": label 10 at index 1 is not a digit 0..9");

  test::writeFile(labels, idxHeader(0x0C, {3}) + std::string(12, '\0'));
  auto badType = loadMnist(dir, true);
  ASSERT_FALSE(badType);
  EXPECT_EQ(badType.error().message(), labels + ": expected u8 labels [n], got i32[3]");

  test::writeFile(labels, idxHeader(0x08, {3}) + std::string("\x01\x09\x02", 3));
  test::writeFile(images, idxHeader(0x08, {3, 4}) + std::string(12, '\x01'));
  auto flat = loadMnist(dir, true);
  ASSERT_FALSE(flat);
  EXPECT_EQ(flat.error().message(), images + ": expected u8 images [n,height,width], got u8[3,4]");
}

TEST(Mnist, AcceptsAnyImageSizeAndPrefersPlainFiles) {
  std::string dir = test::tempDir();
  std::string pixels;
  for (int i = 0; i < 2 * 5 * 4; ++i) pixels += char(i);
  // The plain images file wins over a (different) gzipped one; labels come gzipped only.
  test::writeFile(dir + "/t10k-images-idx3-ubyte", idxHeader(0x08, {2, 5, 4}) + pixels);
  writeGzip(dir + "/t10k-images-idx3-ubyte.gz", idxHeader(0x08, {1, 1, 1}) + "x");
  writeGzip(dir + "/t10k-labels-idx1-ubyte.gz", idxHeader(0x08, {2}) + std::string("\x07\x00", 2));
  auto set = loadMnist(dir, false);
  ASSERT_TRUE(set) << set.error().message();
  EXPECT_EQ(set->images.type(), (TensorType{DType::U8, {2, 1, 5, 4}}));
  EXPECT_EQ(set->images.at(39), 39);
  EXPECT_EQ(set->labels.toDoubles(), (std::vector<double>{7, 0}));
}

}  // namespace
}  // namespace shoal
