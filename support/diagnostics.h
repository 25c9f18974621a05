// Clang-style diagnostics for user input (Location, Error and Expected come from the public header).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <shoal/error.h>

namespace shoal {

/// The text of 1-based line `line` of `text` (without its line break) in `out`; false when
/// the text has no such line.
bool sourceLine(std::string_view text, int line, std::string& out);

enum class Severity { Error, Warning, Note };

struct Diagnostic {
  Severity severity = Severity::Error;
  Location loc;
  std::string message;
};

/// Collects diagnostics from one run (parsing goes on after an error so several can be
/// reported) and renders them clang-style: "file:line:col: error: msg", the source line,
/// and a caret under the column. Source text is registered per file name so the renderer
/// can quote the line.
class DiagnosticEngine {
 public:
  void addSource(const std::string& file, std::string text);
  void report(Severity sev, Location loc, std::string message);
  void error(Location loc, std::string message) { report(Severity::Error, std::move(loc), std::move(message)); }
  void warning(Location loc, std::string message) { report(Severity::Warning, std::move(loc), std::move(message)); }
  void note(Location loc, std::string message) { report(Severity::Note, std::move(loc), std::move(message)); }
  void report(const Error& e) { error(e.location(), e.message()); }

  bool hasErrors() const { return errorCount_ > 0; }
  int errorCount() const { return errorCount_; }
  const std::vector<Diagnostic>& diagnostics() const { return diags_; }
  /// The first error, as an Error value (for APIs that return one).
  Error firstError() const;

  /// All diagnostics rendered, each with its source line and caret.
  std::string render() const;
  /// One diagnostic rendered.
  std::string render(const Diagnostic& d) const;

  /// Upper bound on reported errors; further ones are counted but dropped.
  static constexpr int kMaxErrors = 50;

 private:
  std::unordered_map<std::string, std::string> sources_;
  std::vector<Diagnostic> diags_;
  int errorCount_ = 0;
};

}  // namespace shoal
