// Clang-style rendering of diagnostics.
#include "support/diagnostics.h"

#include <algorithm>

namespace shoal {

std::string Location::str() const {
  std::string out = file;
  if (line > 0) {
    out += ':' + std::to_string(line);
    if (col > 0) out += ':' + std::to_string(col);
  }
  return out;
}

std::string Error::str() const {
  std::string where = loc_.str();
  std::string out = where.empty() ? "" : where + ": ";
  out += "error: ";
  if (!where.empty() && message_.starts_with(out)) return message_;  // rendered with its place already
  return out + message_;
}

void DiagnosticEngine::addSource(const std::string& file, std::string text) { sources_[file] = std::move(text); }

void DiagnosticEngine::report(Severity sev, Location loc, std::string message) {
  if (sev == Severity::Error) {
    ++errorCount_;
    if (errorCount_ > kMaxErrors) return;
  }
  diags_.push_back({sev, std::move(loc), std::move(message)});
}

Error DiagnosticEngine::firstError() const {
  for (const Diagnostic& d : diags_)
    if (d.severity == Severity::Error) return Error(d.message, d.loc);
  return Error("unknown error");
}

bool sourceLine(std::string_view text, int line, std::string& out) {
  if (line < 1) return false;
  size_t pos = 0;
  for (int i = 1; i < line; ++i) {
    pos = text.find('\n', pos);
    if (pos == std::string_view::npos) return false;
    ++pos;
  }
  if (pos > text.size()) return false;
  size_t end = text.find('\n', pos);
  out = std::string(text.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos));
  if (!out.empty() && out.back() == '\r') out.pop_back();
  return true;
}

namespace {

// Width in terminal columns of the first `bytes` bytes of a UTF-8 line: one per code point,
// two for CJK ideographs and full-width forms, so the caret lands under the right glyph.
size_t displayWidth(const std::string& s, size_t bytes) {
  size_t width = 0;
  for (size_t i = 0; i < bytes && i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    uint32_t cp = c;
    size_t len = 1;
    if (c >= 0xF0 && i + 3 < s.size()) {
      cp = ((c & 0x07u) << 18) | ((s[i + 1] & 0x3Fu) << 12) | ((s[i + 2] & 0x3Fu) << 6) | (s[i + 3] & 0x3Fu);
      len = 4;
    } else if (c >= 0xE0 && i + 2 < s.size()) {
      cp = ((c & 0x0Fu) << 12) | ((s[i + 1] & 0x3Fu) << 6) | (s[i + 2] & 0x3Fu);
      len = 3;
    } else if (c >= 0xC0 && i + 1 < s.size()) {
      cp = ((c & 0x1Fu) << 6) | (s[i + 1] & 0x3Fu);
      len = 2;
    }
    bool wide = (cp >= 0x1100 && cp <= 0x115F) || (cp >= 0x2E80 && cp <= 0xA4CF) || (cp >= 0xAC00 && cp <= 0xD7A3) ||
                (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0xFF00 && cp <= 0xFF60) || (cp >= 0xFFE0 && cp <= 0xFFE6);
    width += (c == '\t') ? 1 : (wide ? 2 : 1);
    i += len;
  }
  return width;
}

}  // namespace

std::string DiagnosticEngine::render(const Diagnostic& d) const {
  const char* sev = d.severity == Severity::Error ? "error" : d.severity == Severity::Warning ? "warning" : "note";
  std::string where = d.loc.str();
  std::string out = where.empty() ? "" : where + ": ";
  out += std::string(sev) + ": " + d.message + "\n";
  auto it = sources_.find(d.loc.file);
  std::string line;
  if (it != sources_.end() && d.loc.line > 0 && sourceLine(it->second, d.loc.line, line)) {
    // Long lines (a 10 MB line, say) are clipped around the column so the report stays readable.
    constexpr size_t kWindow = 160;
    size_t col = d.loc.col > 0 ? size_t(d.loc.col - 1) : 0;
    size_t start = 0;
    std::string prefix;
    if (line.size() > kWindow) {
      start = col > kWindow / 2 ? col - kWindow / 2 : 0;
      while (start > 0 && (static_cast<unsigned char>(line[start]) & 0xC0) == 0x80) --start;
      size_t end = std::min(line.size(), start + kWindow);
      while (end < line.size() && (static_cast<unsigned char>(line[end]) & 0xC0) == 0x80) ++end;
      prefix = start > 0 ? "..." : "";
      line = prefix + line.substr(start, end - start) + (end < line.size() ? "..." : "");
      col = col - start + prefix.size();
    }
    for (char& c : line)
      if (static_cast<unsigned char>(c) < 0x20 && c != '\t') c = '?';
    out += line + "\n";
    std::string caret;
    size_t width = displayWidth(line, std::min(col, line.size()));
    for (size_t i = 0; i < width; ++i) caret += (i < line.size() && line[i] == '\t') ? '\t' : ' ';
    out += caret + "^\n";
  }
  return out;
}

std::string DiagnosticEngine::render() const {
  std::string out;
  for (const Diagnostic& d : diags_) out += render(d);
  if (errorCount_ > kMaxErrors)
    out += "note: " + std::to_string(errorCount_ - kMaxErrors) + " more errors not shown\n";
  return out;
}

}  // namespace shoal
