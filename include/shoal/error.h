// Public error values: a message plus the place (file:line:col, pipeline node) it refers to.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "expected.h"

namespace shoal {

/// Where something came from: a file position (1-based line and column; 0 = unknown) and,
/// for IR ops, the pipeline node id that produced it.
struct Location {
  std::string file;
  int line = 0;
  int col = 0;
  std::string node;  ///< pipeline node id, e.g. "c1"; empty when not from a pipeline node

  bool known() const { return line > 0; }
  /// "file:line:col" (or "file", or "" when nothing is known).
  std::string str() const;
};

/// A recoverable error a user can cause: message plus where it happened.
class Error {
 public:
  Error() = default;
  explicit Error(std::string message, Location loc = {}) : message_(std::move(message)), loc_(std::move(loc)) {}
  const std::string& message() const { return message_; }
  const Location& location() const { return loc_; }
  /// "file:line:col: error: message" when the location is known, else "error: message". A
  /// message that is already rendered with its place in front ("file:line:col: error: ...",
  /// as loadPipeline's diagnostics are) is returned as it is, not prefixed twice.
  std::string str() const;

 private:
  std::string message_;
  Location loc_;
};

/// Result-or-error, for every operation user input can make fail.
template <typename T>
using Expected = BasicExpected<T, Error>;

/// Shorthand for returning an error: `return fail("bad shape", loc);`
inline Unexpected<Error> fail(std::string message, Location loc = {}) {
  return Unexpected<Error>(Error(std::move(message), std::move(loc)));
}

}  // namespace shoal
