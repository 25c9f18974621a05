// Tests for the file utilities: SHA-256 vectors, FNV-1a, whole-file reads, atomic writes, ~.
#include "support/file_util.h"
#include "support/hash.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "test_util.h"

namespace shoal {
namespace {

namespace fs = std::filesystem;

// Names in `dir`, sorted (to check no temporary file is left behind).

TEST(Sha256, KnownVectors) {
  // FIPS 180-2 appendix B and the NIST example values.
  EXPECT_EQ(sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256Hex(std::string(1000000, 'a')), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  EXPECT_EQ(sha256Hex("The quick brown fox jumps over the lazy dog"),
            "d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592");
}

TEST(Sha256, PaddingBoundaries) {
  // Lengths around the 55/56/64-byte padding edges (values from coreutils sha256sum).
  EXPECT_EQ(sha256Hex(std::string(55, 'a')), "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318");
  EXPECT_EQ(sha256Hex(std::string(56, 'a')), "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a");
  EXPECT_EQ(sha256Hex(std::string(64, 'a')), "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb");
}

TEST(Sha256, IncrementalMatchesOneShot) {
  std::string msg;
  for (int i = 0; i < 1000; ++i) msg += char('a' + i % 26);
  Sha256 h;
  // Uneven pieces cross the 64-byte block boundary in every way.
  size_t pos = 0, step = 1;
  while (pos < msg.size()) {
    size_t n = std::min(step, msg.size() - pos);
    h.update(std::string_view(msg).substr(pos, n));
    pos += n;
    step = step * 3 % 97 + 1;
  }
  EXPECT_EQ(h.finish(), sha256(msg));
  // finish() resets: the object hashes a fresh message next.
  h.update("abc");
  EXPECT_EQ(h.finish(), sha256("abc"));
}

TEST(Sha256, MatchesBundledDataChecksums) {
  // The data README lists sha256sum output for each file.
  auto bytes = readFileBytes(std::string(SHOAL_SOURCE_DIR) + "/data/mnist-10k/train-labels-idx1-ubyte.gz", kDatasetFileLimit);
  ASSERT_TRUE(bytes) << bytes.error().message();
  EXPECT_EQ(sha256Hex(*bytes), "dbcbae0ce7a9e7d7fcc17274b5e859dada009d1d55bd3d99060074ee3d50d7b1");
}

TEST(Fnv1a64, KnownValues) {
  EXPECT_EQ(fnv1a64(""), 0xcbf29ce484222325ull);
  EXPECT_EQ(fnv1a64("a"), 0xaf63dc4c8601ec8cull);
  EXPECT_EQ(fnv1a64("foobar"), 0x85944171f73967e8ull);
}

TEST(ReadFileBytes, ReadsBinaryContent) {
  std::string dir = test::tempDir();
  std::string bytes("a\0b\xff\n", 5);
  test::writeFile(dir + "/f.bin", bytes);
  auto got = readFileBytes(dir + "/f.bin", kPipelineFileLimit);
  ASSERT_TRUE(got) << got.error().message();
  EXPECT_EQ(*got, bytes);
  test::writeFile(dir + "/empty", "");
  auto empty = readFileBytes(dir + "/empty", kPipelineFileLimit);
  ASSERT_TRUE(empty);
  EXPECT_EQ(*empty, "");
}

TEST(ReadFileBytes, Errors) {
  std::string dir = test::tempDir();
  auto missing = readFileBytes(dir + "/nope.txt", kPipelineFileLimit);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().message(), "cannot open '" + dir + "/nope.txt': No such file or directory");
  auto isDir = readFileBytes(dir, kPipelineFileLimit);
  ASSERT_FALSE(isDir);
  EXPECT_EQ(isDir.error().message(), "cannot open '" + dir + "': Is a directory");
}

TEST(ReadFileBytes, StopsAtTheLimit) {
  // An endless device is read up to the limit, then refused, naming the file and the limit.
  FileReadLimit small{"test file", 1 << 20};
  auto zero = readFileBytes("/dev/zero", small);
  ASSERT_FALSE(zero);
  EXPECT_EQ(zero.error().message(), "cannot read '/dev/zero': larger than 1048576 bytes, the limit for a test file");
  // A regular file over the limit is refused from its size, without reading it.
  std::string dir = test::tempDir();
  test::writeFile(dir + "/big", std::string(2000, 'x'));
  auto big = readFileBytes(dir + "/big", FileReadLimit{"pipeline file", 1000});
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().message(), "cannot read '" + dir + "/big': larger than 1000 bytes, the limit for a pipeline file");
  // Exactly at the limit is fine.
  auto exact = readFileBytes(dir + "/big", FileReadLimit{"pipeline file", 2000});
  ASSERT_TRUE(exact);
  EXPECT_EQ(exact->size(), 2000u);
  // A pipe (not a regular file, no size) is read to its end.
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  std::thread writer([&] {
    std::string chunk(5000, 'p');
    (void)!::write(fds[1], chunk.data(), chunk.size());
    ::close(fds[1]);
  });
  auto piped = readFileBytes("/dev/fd/" + std::to_string(fds[0]), kPipelineFileLimit);
  writer.join();
  ::close(fds[0]);
  ASSERT_TRUE(piped) << piped.error().message();
  EXPECT_EQ(piped->size(), 5000u);
}

TEST(WriteFileAtomic, WritesAndReplaces) {
  std::string dir = test::tempDir();
  std::string path = dir + "/out.bin";
  ASSERT_TRUE(writeFileAtomic(path, std::string("first\0", 6)));
  EXPECT_EQ(test::readFile(path), std::string("first\0", 6));
  ::chmod(path.c_str(), 0640);
  ASSERT_TRUE(writeFileAtomic(path, "second, longer content"));
  EXPECT_EQ(test::readFile(path), "second, longer content");
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u) << "replacing a file keeps its permissions";
  ASSERT_TRUE(writeFileAtomic(path, ""));
  EXPECT_EQ(test::readFile(path), "");
  EXPECT_EQ(test::listDir(dir), std::vector<std::string>{"out.bin"}) << "no temporary file left behind";
}

TEST(WriteFileAtomic, MissingDirectory) {
  std::string dir = test::tempDir();
  auto r = writeFileAtomic(dir + "/no/such/dir/f", "x");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(),
            "cannot write '" + dir + "/no/such/dir/f': cannot create temporary file: No such file or directory");
}

TEST(WriteFileAtomic, RefusesDirectoriesAndSockets) {
  // A directory is never replaced (rename would fail, or empty directories be lost): refused
  // before anything is written, no temporary file made.
  std::string dir = test::tempDir();
  std::string path = dir + "/target";
  fs::create_directory(path);
  test::writeFile(path + "/keep", "kept");
  auto r = writeFileAtomic(path, "data");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), "cannot write '" + path + "': Is a directory");
  EXPECT_EQ(test::listDir(dir), std::vector<std::string>{"target"});
  EXPECT_EQ(test::readFile(path + "/keep"), "kept");
  EXPECT_FALSE(checkWritablePath(path));

  std::string sock = dir + "/s";
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", sock.c_str());
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  auto s = writeFileAtomic(sock, "data");
  ::close(fd);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().message(), "cannot write '" + sock + "': it is a socket; refusing to write over it");
}

TEST(WriteFileAtomic, WritesThroughCharacterDevices) {
  // /dev/null stays a device (as root, a rename would have replaced it with a regular file).
  auto r = writeFileAtomic("/dev/null", "discarded");
  ASSERT_TRUE(r) << r.error().message();
  struct stat st {};
  ASSERT_EQ(::stat("/dev/null", &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_TRUE(checkWritablePath("/dev/null"));
  // /dev/full fails every write with ENOSPC: the error must come back, not success.
  auto full = writeFileAtomic("/dev/full", "data");
  ASSERT_FALSE(full);
  EXPECT_EQ(full.error().message(), "cannot write '/dev/full': No space left on device");
  ASSERT_EQ(::stat("/dev/full", &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
}

TEST(WriteFileAtomic, WritesThroughFifos) {
  std::string dir = test::tempDir();
  std::string fifo = dir + "/pipe";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  std::string got;
  std::thread reader([&] { got = test::readFile(fifo); });
  auto r = writeFileAtomic(fifo, "through the pipe");
  reader.join();
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(got, "through the pipe");
  struct stat st {};
  ASSERT_EQ(::lstat(fifo.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode)) << "the FIFO stays a FIFO";
  EXPECT_EQ(test::listDir(dir), std::vector<std::string>{"pipe"});
}

TEST(WriteFileAtomic, FollowsSymbolicLinks) {
  std::string dir = test::tempDir();
  fs::create_directory(dir + "/real");
  test::writeFile(dir + "/real/f", "old");
  ::chmod((dir + "/real/f").c_str(), 0600);
  fs::create_symlink("real/f", dir + "/link");       // relative target
  fs::create_symlink(dir + "/link", dir + "/link2");  // a chain of two
  ASSERT_TRUE(writeFileAtomic(dir + "/link2", "new"));
  EXPECT_TRUE(fs::is_symlink(dir + "/link")) << "the link is not replaced";
  EXPECT_TRUE(fs::is_symlink(dir + "/link2"));
  EXPECT_EQ(test::readFile(dir + "/real/f"), "new") << "its target is written";
  struct stat st {};
  ASSERT_EQ(::stat((dir + "/real/f").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(test::listDir(dir + "/real"), std::vector<std::string>{"f"}) << "the temporary file was the target's sibling";

  // A dangling link: the file it names is created, the link kept.
  fs::create_symlink("real/made", dir + "/dangling");
  ASSERT_TRUE(writeFileAtomic(dir + "/dangling", "created"));
  EXPECT_TRUE(fs::is_symlink(dir + "/dangling"));
  EXPECT_EQ(test::readFile(dir + "/real/made"), "created");

  // A link to a device writes through to the device.
  fs::create_symlink("/dev/null", dir + "/null");
  ASSERT_TRUE(writeFileAtomic(dir + "/null", "x"));
  EXPECT_TRUE(fs::is_symlink(dir + "/null"));

  // A loop is an error, not a hang.
  fs::create_symlink(dir + "/loop2", dir + "/loop1");
  fs::create_symlink(dir + "/loop1", dir + "/loop2");
  auto loop = writeFileAtomic(dir + "/loop1", "x");
  ASSERT_FALSE(loop);
  EXPECT_EQ(loop.error().message(), "cannot write '" + dir + "/loop1': Too many levels of symbolic links");
}

TEST(CheckWritablePath, MissingDirectoryAndFiles) {
  std::string dir = test::tempDir();
  EXPECT_TRUE(checkWritablePath(dir + "/new.safetensors"));
  test::writeFile(dir + "/old", "x");
  EXPECT_TRUE(checkWritablePath(dir + "/old"));
  auto missing = checkWritablePath(dir + "/no/such/dir/m.safetensors");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().message(),
            "cannot write '" + dir + "/no/such/dir/m.safetensors': directory '" + dir + "/no/such/dir' does not exist");
  auto notDir = checkWritablePath(dir + "/old/m.safetensors");
  ASSERT_FALSE(notDir);
  EXPECT_EQ(notDir.error().message(), "cannot write '" + dir + "/old/m.safetensors': Not a directory");
  EXPECT_EQ(test::listDir(dir), std::vector<std::string>{"old"}) << "checking writes nothing";
}

TEST(CheckWritablePath, ReadOnlyDirectory) {
  if (::geteuid() == 0) GTEST_SKIP() << "root ignores directory permissions";
  std::string dir = test::tempDir();
  fs::create_directory(dir + "/ro");
  ::chmod((dir + "/ro").c_str(), 0555);
  auto r = checkWritablePath(dir + "/ro/m.safetensors");
  ::chmod((dir + "/ro").c_str(), 0755);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(),
            "cannot write '" + dir + "/ro/m.safetensors': directory '" + dir + "/ro' is not writable: Permission denied");
}

TEST(WriteFileAtomic, FailedWriteKeepsOldFile) {
  // A child process caps its file size (RLIMIT_FSIZE), so write() fails part-way with EFBIG,
  // as on a full disk. The old content must survive and no temporary file may remain.
  std::string dir = test::tempDir();
  std::string path = dir + "/ckpt";
  ASSERT_TRUE(writeFileAtomic(path, "old content"));
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(fds[0]);
    std::signal(SIGXFSZ, SIG_IGN);
    rlimit lim{4096, 4096};
    ::setrlimit(RLIMIT_FSIZE, &lim);
    auto r = writeFileAtomic(path, std::string(100000, 'x'));
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
  EXPECT_EQ(test::readFile(path), "old content");
  EXPECT_EQ(test::listDir(dir), std::vector<std::string>{"ckpt"});
}

TEST(WriteFileAtomic, UnwritableDirectory) {
  if (::geteuid() == 0) GTEST_SKIP() << "root ignores directory permissions";
  std::string dir = test::tempDir();
  std::string path = dir + "/f";
  ASSERT_TRUE(writeFileAtomic(path, "old"));
  ::chmod(dir.c_str(), 0555);
  auto r = writeFileAtomic(path, "new");
  ::chmod(dir.c_str(), 0755);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), "cannot write '" + path + "': cannot create temporary file: Permission denied");
  EXPECT_EQ(test::readFile(path), "old");
}

TEST(ExpandUser, ReplacesLeadingTilde) {
  const char* old = std::getenv("HOME");
  std::string saved = old ? old : "";
  ::setenv("HOME", "/home/tester", 1);
  EXPECT_EQ(expandUser("~"), "/home/tester");
  EXPECT_EQ(expandUser("~/.cache/shoal"), "/home/tester/.cache/shoal");
  EXPECT_EQ(expandUser("/abs/~/x"), "/abs/~/x");
  EXPECT_EQ(expandUser("rel/path"), "rel/path");
  EXPECT_EQ(expandUser("~other/x"), "~other/x");
  EXPECT_EQ(expandUser(""), "");
  ::setenv("HOME", "/home/slash/", 1);
  EXPECT_EQ(expandUser("~/x"), "/home/slash/x");
  if (old) ::setenv("HOME", saved.c_str(), 1); else ::unsetenv("HOME");
}

}  // namespace
}  // namespace shoal
