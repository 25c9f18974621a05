// IDX decoding (plain or gzip via zlib) and the MNIST loader built on it.
#include "runtime/data/idx.h"

#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <optional>

#include "support/file_util.h"

namespace shoal {

namespace {

constexpr size_t kInflateChunk = size_t(1) << 16;

// One IDX element type: its typecode, on-disk size, spelling and the dtype it loads as.
struct IdxType {
  uint8_t code;
  size_t size;
  const char* name;
  DType dtype;
};

constexpr IdxType kIdxTypes[] = {
    {0x08, 1, "u8", DType::U8},   {0x09, 1, "i8", DType::I32},  {0x0B, 2, "i16", DType::I32},
    {0x0C, 4, "i32", DType::I32}, {0x0D, 4, "f32", DType::F32}, {0x0E, 8, "f64", DType::F64},
};

const IdxType* findIdxType(uint8_t code) {
  for (const IdxType& t : kIdxTypes)
    if (t.code == code) return &t;
  return nullptr;
}

uint32_t readBigEndian32(const unsigned char* p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | uint32_t(p[3]);
}

uint64_t readBigEndian(const unsigned char* p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v = v << 8 | p[i];
  return v;
}

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

bool isGzip(std::string_view bytes) {
  return bytes.size() >= 2 && uint8_t(bytes[0]) == 0x1f && uint8_t(bytes[1]) == 0x8b;
}

// The IDX header: element type, extents, and where the data starts.
struct IdxHeader {
  const IdxType* type = nullptr;
  Shape dims;
  size_t headerBytes = 0;
  size_t dataBytes = 0;

  // "8000x28x28 = 6272000 bytes of data" (with the element type when it is wider than a byte).
  std::string describe() const {
    std::string s = shapeString(dims);
    if (type->size > 1) s += std::string(" ") + type->name + " (" + std::to_string(type->size) + " bytes each)";
    return s + " = " + std::to_string(dataBytes) + " bytes of data";
  }
};

// Parses the header from the first bytes of the (decompressed) stream. Returns nullopt with
// no error while more bytes are needed and `complete` is false.
Expected<std::optional<IdxHeader>> parseHeader(std::string_view bytes, bool complete, const std::string& name) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  if (bytes.size() < 4) {
    if (!complete) return std::optional<IdxHeader>();
    if (bytes.empty()) return fail(name + ": empty file");
    return fail(name + ": truncated header: " + std::to_string(bytes.size()) + " bytes, an IDX header needs at least 4");
  }
  uint32_t magic = readBigEndian32(p);
  const IdxType* type = findIdxType(p[2]);
  if (p[0] != 0 || p[1] != 0 || type == nullptr) return fail(name + ": not an IDX file (bad magic " + hex32(magic) + ")");
  size_t ndims = p[3];
  if (ndims == 0) return fail(name + ": IDX header has 0 dimensions");
  size_t headerBytes = 4 + 4 * ndims;
  if (bytes.size() < headerBytes) {
    if (!complete) return std::optional<IdxHeader>();
    return fail(name + ": truncated header: magic " + hex32(magic) + " says " + std::to_string(ndims) +
                " dimensions (" + std::to_string(headerBytes) + " header bytes), file has " +
                std::to_string(bytes.size()));
  }
  IdxHeader h;
  h.type = type;
  h.headerBytes = headerBytes;
  for (size_t i = 0; i < ndims; ++i) {
    uint32_t d = readBigEndian32(p + 4 + 4 * i);
    if (d == 0) return fail(name + ": dimension " + std::to_string(i) + " is 0");
    h.dims.push_back(int64_t(d));
  }
  // The data may not exceed the dataset-file limit (also what a gzip stream may inflate to),
  // which keeps the byte count well inside int64 and size_t.
  constexpr uint64_t kMaxDataBytes = uint64_t(kDatasetFileLimit.maxBytes);
  uint64_t bytesTotal = type->size;
  for (int64_t d : h.dims) {
    if (bytesTotal > kMaxDataBytes / uint64_t(d))
      return fail(name + ": header says " + shapeString(h.dims) + ", more than " + std::to_string(kMaxDataBytes) +
                  " bytes of data, the limit for a " + kDatasetFileLimit.kind);
    bytesTotal *= uint64_t(d);
  }
  h.dataBytes = size_t(bytesTotal);
  return std::optional<IdxHeader>(h);
}

// Decompresses a gzip stream (possibly several concatenated members). The output is capped:
// once the IDX header is readable, at header + data + 1 bytes (one extra byte is enough to
// tell that there are trailing bytes), so a lying or malicious stream cannot exhaust memory.
Expected<std::string> inflateIdx(std::string_view in, const std::string& name) {
  z_stream zs{};
  if (inflateInit2(&zs, 15 + 16) != Z_OK) return fail(name + ": cannot initialise zlib");
  struct Cleanup {
    z_stream* zs;
    ~Cleanup() { inflateEnd(zs); }
  } cleanup{&zs};

  if (in.size() > std::numeric_limits<uInt>::max()) return fail(name + ": compressed file over 4 GiB");
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = uInt(in.size());

  std::string out;
  std::optional<size_t> cap;  // maximum output bytes, known once the header is
  for (;;) {
    if (!cap) {
      auto header = parseHeader(out, /*complete=*/false, name);
      if (!header) return Unexpected(header.error());
      if (*header) {
        cap = (*header)->headerBytes + (*header)->dataBytes + 1;
        // One allocation, no copies as the output grows; at most what the input can inflate
        // to (deflate's limit is 1032:1), so a lying header reserves nothing it cannot fill.
        out.reserve(std::min(*cap, in.size() * 1032 + 4096));
      }
    }
    size_t want = kInflateChunk;
    if (cap) want = std::min(want, *cap - out.size());
    if (want == 0) break;  // we have one byte past the data: the caller reports trailing bytes
    size_t used = out.size();
    out.resize(used + want);
    zs.next_out = reinterpret_cast<Bytef*>(out.data() + used);
    zs.avail_out = uInt(want);
    int rc = inflate(&zs, Z_NO_FLUSH);
    out.resize(used + (want - zs.avail_out));
    if (rc == Z_STREAM_END) {
      if (zs.avail_in == 0) break;
      // Another gzip member follows (as `cat a.gz b.gz` makes); anything else is garbage.
      std::string_view rest(reinterpret_cast<const char*>(zs.next_in), zs.avail_in);
      if (!isGzip(rest)) return fail(name + ": trailing garbage after the gzip stream");
      if (inflateReset(&zs) != Z_OK) return fail(name + ": cannot reset zlib");
      continue;
    }
    if (rc == Z_OK) continue;
    // With output space available, Z_BUF_ERROR means the input ran out mid-stream.
    if (rc == Z_BUF_ERROR) return fail(name + ": corrupt gzip stream: unexpected end of file");
    std::string msg = zs.msg ? zs.msg : zError(rc);
    return fail(name + ": corrupt gzip stream: " + msg);
  }
  return out;
}

// Converts big-endian elements to a tensor of the natural dtype.
Tensor decodeElements(const IdxHeader& h, const unsigned char* p) {
  Tensor t(h.type->dtype, h.dims);
  int64_t n = t.numElements();
  switch (h.type->dtype) {
    case DType::U8:
      std::memcpy(t.raw(), p, size_t(n));
      break;
    case DType::I32: {
      int32_t* out = t.data<int32_t>();
      size_t w = h.type->size;
      for (int64_t i = 0; i < n; ++i) {
        uint64_t v = readBigEndian(p + size_t(i) * w, w);
        // Sign-extend from the on-disk width (8, 16 or 32 bits).
        int shift = int(64 - 8 * w);
        out[i] = int32_t(int64_t(v << shift) >> shift);
      }
      break;
    }
    case DType::F32: {
      float* out = t.data<float>();
      for (int64_t i = 0; i < n; ++i) {
        uint32_t bits = readBigEndian32(p + size_t(i) * 4);
        std::memcpy(&out[i], &bits, 4);
      }
      break;
    }
    case DType::F64: {
      double* out = t.data<double>();
      for (int64_t i = 0; i < n; ++i) {
        uint64_t bits = readBigEndian(p + size_t(i) * 8, 8);
        std::memcpy(&out[i], &bits, 8);
      }
      break;
    }
    default:
      break;  // no IDX typecode maps to the other types
  }
  return t;
}

}  // namespace

Expected<Tensor> parseIdx(std::string_view bytes, const std::string& name) {
  std::string inflated;
  bool compressed = isGzip(bytes);
  if (compressed) {
    auto out = inflateIdx(bytes, name);
    if (!out) return Unexpected(out.error());
    inflated = std::move(*out);
    bytes = inflated;
  }
  auto header = parseHeader(bytes, /*complete=*/true, name);
  if (!header) return Unexpected(header.error());
  const IdxHeader& h = **header;
  size_t have = bytes.size() - h.headerBytes;
  if (have < h.dataBytes)
    return fail(name + ": truncated: header says " + h.describe() + ", file has " + std::to_string(have));
  if (have > h.dataBytes) {
    std::string extra = compressed ? "" : " (" + std::to_string(have - h.dataBytes) + " extra)";
    return fail(name + ": trailing bytes after data: header says " + h.describe() + extra);
  }
  return decodeElements(h, reinterpret_cast<const unsigned char*>(bytes.data()) + h.headerBytes);
}

Expected<Tensor> readIdx(const std::string& path) {
  auto bytes = readFileBytes(path, kDatasetFileLimit);
  if (!bytes) return Unexpected(bytes.error());
  return parseIdx(*bytes, path);
}

namespace {

bool fileExists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

// Reads `dir/base` or `dir/base.gz`, whichever exists (the plain file first).
Expected<std::pair<Tensor, std::string>> readMnistFile(const std::string& dir, const std::string& base) {
  std::string plain = dir + "/" + base;
  std::string path = plain;
  if (!fileExists(plain)) {
    path = plain + ".gz";
    if (!fileExists(path)) return fail("MNIST data: neither '" + plain + "' nor '" + path + "' exists");
  }
  auto t = readIdx(path);
  if (!t) return Unexpected(t.error());
  return std::pair<Tensor, std::string>(std::move(*t), path);
}

}  // namespace

Expected<MnistSet> loadMnist(const std::string& dir, bool train) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return fail("cannot open MNIST directory '" + dir + "': " + std::strerror(errno));
  if (!S_ISDIR(st.st_mode)) return fail("cannot open MNIST directory '" + dir + "': " + std::strerror(ENOTDIR));

  std::string prefix = train ? "train" : "t10k";
  auto images = readMnistFile(dir, prefix + "-images-idx3-ubyte");
  if (!images) return Unexpected(images.error());
  auto labels = readMnistFile(dir, prefix + "-labels-idx1-ubyte");
  if (!labels) return Unexpected(labels.error());
  auto& [img, imgPath] = *images;
  auto& [lab, labPath] = *labels;

  if (img.dtype() != DType::U8 || img.shape().size() != 3)
    return fail(imgPath + ": expected u8 images [n,height,width], got " + img.type().str());
  if (lab.dtype() != DType::U8 || lab.shape().size() != 1)
    return fail(labPath + ": expected u8 labels [n], got " + lab.type().str());
  if (img.shape()[0] != lab.shape()[0])
    return fail("MNIST data: " + imgPath + " has " + std::to_string(img.shape()[0]) + " images but " + labPath +
                " has " + std::to_string(lab.shape()[0]) + " labels");

  MnistSet set;
  const Shape& s = img.shape();
  set.images = img.reshaped({s[0], 1, s[1], s[2]});
  set.labels = Tensor(DType::I64, {lab.shape()[0]});
  const uint8_t* in = lab.data<uint8_t>();
  int64_t* out = set.labels.data<int64_t>();
  for (int64_t i = 0; i < lab.numElements(); ++i) {
    if (in[i] > 9)
      return fail(labPath + ": label " + std::to_string(in[i]) + " at index " + std::to_string(i) +
                  " is not a digit 0..9");
    out[i] = in[i];
  }
  return set;
}

}  // namespace shoal
