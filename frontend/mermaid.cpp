// Line-oriented recursive-descent parser for the Mermaid flowchart subset shoal reads.
#include "frontend/mermaid.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <unordered_map>
#include <unordered_set>
#include <utility>

namespace shoal::mermaid {

std::string_view nodeShapeName(NodeShape s) {
  switch (s) {
    case NodeShape::Rect: return "rect";
    case NodeShape::Round: return "round";
    case NodeShape::Stadium: return "stadium";
    case NodeShape::Circle: return "circle";
    case NodeShape::Decision: return "decision";
    case NodeShape::Subroutine: return "subroutine";
    case NodeShape::Cylinder: return "cylinder";
    case NodeShape::Hexagon: return "hexagon";
  }
  return "?";
}

const NodeDecl* Document::findNode(std::string_view id) const {
  for (const NodeDecl& n : nodes)
    if (n.id == id) return &n;
  return nullptr;
}

// ---------------------------------------------------------------------------------------------
// UTF-8 helpers

namespace text {

std::optional<size_t> findInvalidUtf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t n = s.size();
  for (size_t i = 0; i < n;) {
    unsigned char c = p[i];
    if (c < 0x80) {
      if (c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f') return i;
      if (c == 0x7F) return i;
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
      cp = c & 0x1Fu;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      cp = c & 0x0Fu;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      cp = c & 0x07u;
    } else {
      return i;  // a continuation byte out of place, an overlong lead (C0/C1) or F5..FF
    }
    if (i + len > n) return i;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (p[i + k] & 0x3Fu);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return i;
    i += len;
  }
  return std::nullopt;
}

size_t decodeUtf8(std::string_view s, size_t i, char32_t& cp) {
  auto byte = [&](size_t k) -> uint32_t { return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : 0x80u; };
  uint32_t c = byte(0);
  if (c < 0x80) {
    cp = c;
    return 1;
  }
  if (c >= 0xF0) {
    cp = ((c & 0x07u) << 18) | ((byte(1) & 0x3Fu) << 12) | ((byte(2) & 0x3Fu) << 6) | (byte(3) & 0x3Fu);
    return std::min<size_t>(4, s.size() - i);
  }
  if (c >= 0xE0) {
    cp = ((c & 0x0Fu) << 12) | ((byte(1) & 0x3Fu) << 6) | (byte(2) & 0x3Fu);
    return std::min<size_t>(3, s.size() - i);
  }
  cp = ((c & 0x1Fu) << 6) | (byte(1) & 0x3Fu);
  return std::min<size_t>(2, s.size() - i);
}

bool isWordCodePoint(char32_t cp) {
  if (cp < 0x80) return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || (cp >= '0' && cp <= '9') || cp == '_';
  // Non-ASCII: everything except the blocks of punctuation, symbols, spaces and emoji (which
  // Mermaid's own lexer also refuses in an id).
  if (cp <= 0xBF || cp == 0xD7 || cp == 0xF7) return false;         // Latin-1 punctuation, NBSP, × ÷
  if (cp >= 0x2000 && cp <= 0x2BFF) return false;                    // punctuation, arrows, math, symbols
  if (cp >= 0x3000 && cp <= 0x303F) return false;                    // CJK punctuation, ideographic space
  if (cp >= 0xE000 && cp <= 0xF8FF) return false;                    // private use
  if (cp >= 0xFE10 && cp <= 0xFE1F) return false;                    // vertical forms
  if (cp >= 0xFE30 && cp <= 0xFE6F) return false;                    // CJK compatibility forms
  if (cp >= 0xFEFF && cp <= 0xFF0F) return false;                    // BOM, full-width ！＂＃...／
  if ((cp >= 0xFF1A && cp <= 0xFF20) || (cp >= 0xFF3B && cp <= 0xFF40) || (cp >= 0xFF5B && cp <= 0xFF65))
    return false;                                                    // full-width ：；＜＝＞？＠ etc.
  if (cp >= 0x1F000 && cp <= 0x1FAFF) return false;                  // emoji and pictographs
  return true;
}

size_t wordLength(std::string_view s, size_t i) {
  size_t start = i;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if (!isWordCodePoint(c)) break;
      ++i;
      continue;
    }
    char32_t cp;
    size_t len = decodeUtf8(s, i, cp);
    if (!isWordCodePoint(cp)) break;
    i += len;
  }
  return i - start;
}

std::string quoteToken(std::string_view tok) {
  constexpr size_t kMax = 40;
  if (tok.size() <= kMax) return "'" + std::string(tok) + "'";
  size_t cut = kMax;
  while (cut > 0 && (static_cast<unsigned char>(tok[cut]) & 0xC0) == 0x80) --cut;
  return "'" + std::string(tok.substr(0, cut)) + "...'";
}

std::string decodeEntities(std::string_view s) {
  if (s.find('#') == std::string_view::npos) return std::string(s);
  static const std::array<std::pair<std::string_view, std::string_view>, 6> kNamed = {{
      {"quot", "\""}, {"amp", "&"}, {"lt", "<"}, {"gt", ">"}, {"apos", "'"}, {"nbsp", "\xC2\xA0"}}};
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    if (s[i] == '#') {
      size_t semi = i + 1;
      while (semi < s.size() && semi - i <= 10 &&
             ((s[semi] >= 'a' && s[semi] <= 'z') || (s[semi] >= 'A' && s[semi] <= 'Z') || (s[semi] >= '0' && s[semi] <= '9')))
        ++semi;
      if (semi < s.size() && s[semi] == ';' && semi > i + 1) {
        std::string_view name = s.substr(i + 1, semi - i - 1);
        bool digits = true;
        for (char c : name) digits = digits && c >= '0' && c <= '9';
        if (digits && name.size() <= 7) {
          uint32_t cp = 0;
          for (char c : name) cp = cp * 10 + uint32_t(c - '0');
          if (cp > 0 && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF) && (cp >= 0x20 || cp == '\t')) {
            if (cp < 0x80) {
              out += char(cp);
            } else if (cp < 0x800) {
              out += char(0xC0 | (cp >> 6));
              out += char(0x80 | (cp & 0x3F));
            } else if (cp < 0x10000) {
              out += char(0xE0 | (cp >> 12));
              out += char(0x80 | ((cp >> 6) & 0x3F));
              out += char(0x80 | (cp & 0x3F));
            } else {
              out += char(0xF0 | (cp >> 18));
              out += char(0x80 | ((cp >> 12) & 0x3F));
              out += char(0x80 | ((cp >> 6) & 0x3F));
              out += char(0x80 | (cp & 0x3F));
            }
            i = semi + 1;
            continue;
          }
        }
        bool done = false;
        for (const auto& [key, value] : kNamed) {
          if (name == key) {
            out += value;
            i = semi + 1;
            done = true;
            break;
          }
        }
        if (done) continue;
      }
    }
    out += s[i];
    ++i;
  }
  return out;
}

}  // namespace text

// ---------------------------------------------------------------------------------------------
// The parser

namespace {

bool isSpace(char c) { return c == ' ' || c == '\t' || c == '\f'; }
bool isOpener(char c) { return c == '[' || c == '(' || c == '{'; }
// Characters Mermaid's lexer refuses inside an unquoted label.
bool isLabelForbidden(char c) {
  return c == '[' || c == ']' || c == '(' || c == ')' || c == '{' || c == '}' || c == '"' || c == '|';
}
bool isArrowChar(char c) { return c == '-' || c == '=' || c == '.' || c == '<' || c == '>' || c == '~'; }

std::string_view trim(std::string_view s, size_t& lead) {
  lead = 0;
  while (lead < s.size() && isSpace(s[lead])) ++lead;
  size_t end = s.size();
  while (end > lead && isSpace(s[end - 1])) --end;
  return s.substr(lead, end - lead);
}

// More edges than any real pipeline has; the bound keeps `&` fans from exploding.
constexpr size_t kMaxEdges = 1'000'000;

// Words that Mermaid's grammar reserves; they cannot be node ids.
bool isReservedId(std::string_view id) {
  static const std::unordered_set<std::string_view> kReserved = {"end", "subgraph", "graph", "flowchart",
                                                                 "style", "class", "classDef", "linkStyle"};
  return kReserved.count(id) != 0;
}

// Statements shoal accepts and ignores (styling, interaction, layout inside subgraphs).
bool isIgnoredStatement(std::string_view word) {
  static const std::unordered_set<std::string_view> kIgnored = {"classDef", "class", "style", "linkStyle",
                                                                "click", "direction", "accTitle", "accDescr"};
  return kIgnored.count(word) != 0;
}

bool isDirection(std::string_view d) { return d == "TD" || d == "TB" || d == "BT" || d == "LR" || d == "RL"; }

struct ShapeSyntax {
  std::string_view open, close;
  NodeShape shape;
};

// Longest openers first so `[[` wins over `[`.
constexpr std::array<ShapeSyntax, 8> kShapes = {{
    {"([", "])", NodeShape::Stadium},
    {"((", "))", NodeShape::Circle},
    {"[[", "]]", NodeShape::Subroutine},
    {"[(", ")]", NodeShape::Cylinder},
    {"{{", "}}", NodeShape::Hexagon},
    {"[", "]", NodeShape::Rect},
    {"(", ")", NodeShape::Round},
    {"{", "}", NodeShape::Decision},
}};

// An arrow as parsed: whether it makes a data edge, and its label.
struct Arrow {
  Location loc;
  bool invisible = false;  // `~~~`: layout only, no edge
  bool hasLabel = false;
  std::string label;
  Location labelLoc;
};

class Parser {
 public:
  Parser(std::string_view text, const std::string& file, DiagnosticEngine& diags)
      : text_(text), file_(file), diags_(diags) {}

  std::optional<Document> run() {
    doc_.file = file_;
    if (auto bad = text::findInvalidUtf8(text_)) {
      reportAtOffset(*bad, "input is not valid UTF-8 text");
      return std::nullopt;
    }
    bool headerSeen = false;
    bool inFrontMatter = false;
    bool inAccDescr = false;
    int frontMatterLine = 0;
    size_t lineStart = 0;
    lineNo_ = 0;
    while (lineStart <= text_.size()) {
      size_t nl = text_.find('\n', lineStart);
      size_t lineEnd = nl == std::string_view::npos ? text_.size() : nl;
      line_ = text_.substr(lineStart, lineEnd - lineStart);
      if (!line_.empty() && line_.back() == '\r') line_.remove_suffix(1);
      ++lineNo_;
      pos_ = 0;
      if (lineNo_ == 1 && line_.starts_with("\xEF\xBB\xBF")) pos_ = 3;  // a UTF-8 byte-order mark
      lineStart = lineEnd + 1;

      size_t lead;
      std::string_view content = trim(line_.substr(pos_), lead);
      if (inFrontMatter) {
        if (content == "---") inFrontMatter = false;
      } else if (inAccDescr) {
        if (content.find('}') != std::string_view::npos) inAccDescr = false;
      } else if (lineNo_ == 1 && content == "---") {
        inFrontMatter = true;
        frontMatterLine = lineNo_;
      } else if (content.empty()) {
        // blank line
      } else if (content.starts_with("%%")) {
        doc_.comments.push_back({std::string(content.substr(2)), Location{doc_.file, lineNo_, int(pos_ + lead) + 1, ""}});
      } else if (!headerSeen) {
        pos_ += lead;
        if (!parseHeader()) return std::nullopt;
        headerSeen = true;
      } else {
        pos_ += lead;
        if (content.starts_with("accDescr") && content.ends_with("{")) inAccDescr = true;
        else parseLine();
      }
      if (nl == std::string_view::npos) break;
    }
    if (inFrontMatter) {
      error(Location{file_, frontMatterLine, 1, {}}, "front matter opened with '---' is not closed");
      return std::nullopt;
    }
    if (!headerSeen) {
      error(Location{file_, 1, 1, {}}, "file is empty: expected 'graph' or 'flowchart' header");
      return std::nullopt;
    }
    for (size_t open : subgraphStack_) error(doc_.subgraphs[open].loc, "subgraph not closed with 'end'");
    if (errors_ > 0) return std::nullopt;
    return std::move(doc_);
  }

 private:
  // --- positions and messages -------------------------------------------------------------

  Location loc(size_t p) const { return Location{file_, lineNo_, int(p) + 1, {}}; }
  bool atEnd() const { return pos_ >= line_.size(); }
  char peek(size_t ahead = 0) const { return pos_ + ahead < line_.size() ? line_[pos_ + ahead] : '\0'; }
  bool startsWith(size_t p, std::string_view s) const { return p <= line_.size() && line_.substr(p).starts_with(s); }
  void skipSpaces() {
    while (pos_ < line_.size() && isSpace(line_[pos_])) ++pos_;
  }

  void error(Location where, std::string message) {
    ++errors_;
    diags_.error(std::move(where), std::move(message));
  }
  // A note for the error just reported; dropped with it once the engine stops keeping errors.
  void note(Location where, std::string message) {
    if (diags_.errorCount() <= DiagnosticEngine::kMaxErrors) diags_.note(std::move(where), std::move(message));
  }

  // Reports at a byte offset of the whole text (used before lines are split).
  void reportAtOffset(size_t offset, std::string message) {
    int line = 1;
    size_t lineBegin = 0;
    for (size_t i = 0; i < offset; ++i) {
      if (text_[i] == '\n') {
        ++line;
        lineBegin = i + 1;
      }
    }
    error(Location{file_, line, int(offset - lineBegin) + 1, {}}, std::move(message));
  }

  // The token at p, quoted for a message: an arrow, a word, or one character.
  std::string describe(size_t p) const {
    if (p >= line_.size()) return "end of line";
    char c = line_[p];
    size_t n = 0;
    if (isArrowChar(c)) {
      while (p + n < line_.size() && isArrowChar(line_[p + n])) ++n;
    } else if (c == '%' && startsWith(p, "%%")) {
      n = 2;
    } else {
      n = text::wordLength(line_, p);
      if (n == 0) {
        char32_t cp;
        n = text::decodeUtf8(line_, p, cp);
      }
    }
    return text::quoteToken(line_.substr(p, n));
  }

  // --- header -------------------------------------------------------------------------------

  // `graph` | `flowchart` [direction] [';' statements]. False if it is no flowchart header at all.
  bool parseHeader() {
    size_t start = pos_;
    size_t n = text::wordLength(line_, pos_);
    std::string_view word = line_.substr(pos_, n);
    if (word != "graph" && word != "flowchart") {
      error(loc(start), "expected 'graph' or 'flowchart', got " + describe(start));
      return false;
    }
    doc_.kind = std::string(word);
    pos_ += n;
    skipSpaces();
    size_t dirLen = text::wordLength(line_, pos_);
    if (dirLen > 0) {
      std::string_view dir = line_.substr(pos_, dirLen);
      if (isDirection(dir)) doc_.direction = std::string(dir);
      else error(loc(pos_), "unknown direction " + text::quoteToken(dir));
      pos_ += dirLen;
      skipSpaces();
    }
    if (peek() == ';') {
      ++pos_;
      parseStatements();
      return true;
    }
    if (!atEnd()) expectEndOfStatement("the header");
    return true;
  }

  // Reports what stands where a statement should have ended.
  void expectEndOfStatement(std::string_view after) {
    if (startsWith(pos_, "%%"))
      error(loc(pos_), "a '%%' comment must be on a line of its own");
    else
      error(loc(pos_), "expected end of line after " + std::string(after) + ", got " + describe(pos_));
  }

  // --- statements ---------------------------------------------------------------------------

  void parseLine() {
    size_t n = text::wordLength(line_, pos_);
    std::string_view word = line_.substr(pos_, n);
    size_t after = pos_ + n;
    size_t next = after;
    while (next < line_.size() && isSpace(line_[next])) ++next;
    bool followedBySpace = next > after;

    if (word == "subgraph" && (after == line_.size() || followedBySpace)) {
      openSubgraph(pos_, next);
      return;
    }
    if (word == "end" && (next == line_.size() || line_[next] == ';')) {
      if (subgraphStack_.empty()) error(loc(pos_), "'end' without a matching 'subgraph'");
      else {
        subgraphStack_.pop_back();
        subgraphMembers_.pop_back();
      }
      pos_ = next;
      if (peek() == ';') {
        ++pos_;
        parseStatements();
      }
      return;
    }
    // `style a fill:#f00`, `class a b`, `click a "url"`, `direction LR`, `accTitle: x`: layout and
    // looks only. They must name something (`style --> b` is a node, and an error, in Mermaid too).
    if (isIgnoredStatement(word)) {
      bool accessibility = word == "accTitle" || word == "accDescr";
      if ((accessibility && next < line_.size() && line_[next] == ':') ||
          (followedBySpace && next < line_.size() && !isArrowChar(line_[next]) && line_[next] != '&'))
        return;
    }
    parseStatements();
  }

  void openSubgraph(size_t keyword, size_t rest) {
    Subgraph sg;
    sg.loc = loc(keyword);
    size_t n = text::wordLength(line_, rest);
    sg.id = std::string(line_.substr(rest, n));
    size_t lead;
    std::string_view title = trim(line_.substr(rest + n), lead);
    sg.title = std::string(title.empty() ? std::string_view(sg.id) : title);
    subgraphStack_.push_back(doc_.subgraphs.size());
    subgraphMembers_.emplace_back();
    doc_.subgraphs.push_back(std::move(sg));
  }

  // statement (';' statement)* — an error abandons the rest of the line.
  void parseStatements() {
    for (;;) {
      if (!parseStatement()) return;
      skipSpaces();
      if (atEnd()) return;
      if (peek() != ';') {
        expectEndOfStatement("a statement");  // not reached: parseStatement stops only at ';' or end
        return;
      }
      ++pos_;
    }
  }

  // group (arrow group)*, or nothing (`;;`).
  bool parseStatement() {
    skipSpaces();
    if (atEnd() || peek() == ';') return true;
    std::vector<size_t> left;
    if (!parseGroup(left)) return false;
    for (;;) {
      skipSpaces();
      if (atEnd() || peek() == ';') return true;
      if (startsWith(pos_, "%%")) {
        expectEndOfStatement("a statement");
        return false;
      }
      Arrow arrow;
      if (!parseArrow(arrow)) return false;
      std::vector<size_t> right;
      if (!parseGroup(right)) return false;
      // `a & b & ... --> c & d & ...` makes |left| x |right| edges: bound it so that a crafted
      // line cannot make the output quadratic in the input.
      if (!arrow.invisible && doc_.edges.size() + left.size() * right.size() > kMaxEdges) {
        error(arrow.loc, "too many edges: a pipeline may have at most " + std::to_string(kMaxEdges));
        return false;
      }
      if (!arrow.invisible) {
        for (size_t from : left) {
          for (size_t to : right) {
            Edge e;
            e.from = doc_.nodes[from].id;
            e.to = doc_.nodes[to].id;
            e.loc = arrow.loc;
            e.hasLabel = arrow.hasLabel;
            e.label = arrow.label;
            e.labelLoc = arrow.labelLoc;
            doc_.edges.push_back(std::move(e));
          }
        }
      }
      left = std::move(right);
    }
  }

  // node ('&' node)*
  bool parseGroup(std::vector<size_t>& out) {
    for (;;) {
      std::optional<size_t> node = parseNode();
      if (!node) return false;
      out.push_back(*node);
      size_t save = pos_;
      skipSpaces();
      if (peek() != '&') {
        pos_ = save;
        return true;
      }
      ++pos_;
      skipSpaces();
    }
  }

  // id [shape-with-label] [':::' class]
  std::optional<size_t> parseNode() {
    skipSpaces();
    size_t start = pos_;
    size_t n = text::wordLength(line_, pos_);
    if (n == 0) {
      error(loc(start), "expected a node id, got " + describe(start));
      return std::nullopt;
    }
    NodeDecl decl;
    decl.id = std::string(line_.substr(pos_, n));
    decl.loc = loc(start);
    decl.loc.node = decl.id;
    if (isReservedId(decl.id)) {
      error(decl.loc, "'" + decl.id + "' is a Mermaid keyword and cannot be a node id");
      return std::nullopt;
    }
    pos_ += n;
    if (isOpener(peek())) {
      if (!parseShape(decl)) return std::nullopt;
    } else {
      size_t p = pos_;
      while (p < line_.size() && isSpace(line_[p])) ++p;
      if (p > pos_ && p < line_.size() && isOpener(line_[p])) {
        error(loc(pos_), "unexpected space between node id '" + decl.id + "' and its label");
        return std::nullopt;
      }
    }
    if (startsWith(pos_, ":::")) {
      size_t p = pos_ + 3;
      while (p < line_.size() && (text::wordLength(line_, p) > 0 || line_[p] == '-'))
        p += line_[p] == '-' ? 1 : text::wordLength(line_, p);
      if (p == pos_ + 3) {
        error(loc(p), "expected a class name after ':::', got " + describe(p));
        return std::nullopt;
      }
      pos_ = p;
    }
    return addNode(std::move(decl));
  }

  // The shape and label after an id; pos_ is at the opener.
  bool parseShape(NodeDecl& decl) {
    size_t open = pos_;
    if (startsWith(open, "(((") || startsWith(open, "[/") || startsWith(open, "[\\")) {
      error(loc(open), "unsupported node shape " + text::quoteToken(line_.substr(open, startsWith(open, "(((") ? 3 : 2)) +
                           "; use id[...], id(...), id([...]), id((...)), id{...}, id[[...]], id[(...)] or id{{...}}");
      return false;
    }
    const ShapeSyntax* syntax = nullptr;
    for (const ShapeSyntax& s : kShapes) {
      if (startsWith(open, s.open)) {
        syntax = &s;
        break;
      }
    }
    pos_ += syntax->open.size();
    decl.shape = syntax->shape;
    std::string closer(syntax->close);
    auto unclosed = [&](size_t where) {
      error(loc(where), "expected '" + closer + "' to close node label");
      note(loc(open), "to match this '" + std::string(syntax->open) + "'");
    };

    if (peek() == '"') {
      size_t quote = pos_;
      size_t close = line_.find('"', quote + 1);
      if (close == std::string_view::npos) {
        error(loc(quote), "unterminated quoted label");
        return false;
      }
      if (close == quote + 1) {
        error(loc(quote), "empty node label");
        return false;
      }
      decl.label = text::decodeEntities(line_.substr(quote + 1, close - quote - 1));
      decl.labelLoc = loc(quote + 1);
      decl.labelLoc.node = decl.id;
      decl.quoted = true;
      pos_ = close + 1;
      skipSpaces();
      if (!startsWith(pos_, closer)) {
        unclosed(pos_);
        return false;
      }
      pos_ += closer.size();
      decl.hasLabel = true;
      return true;
    }

    size_t p = pos_;
    for (; p < line_.size(); ++p) {
      if (startsWith(p, closer)) break;
      if (isLabelForbidden(line_[p])) {
        error(loc(p), "unexpected '" + std::string(1, line_[p]) + "' in unquoted node label; quote the label: " +
                          decl.id + std::string(syntax->open) + "\"...\"" + closer);
        return false;
      }
    }
    if (p >= line_.size()) {
      unclosed(line_.size());
      return false;
    }
    size_t lead;
    std::string_view label = trim(line_.substr(pos_, p - pos_), lead);
    if (label.empty()) {
      error(loc(open), "empty node label");
      return false;
    }
    decl.label = text::decodeEntities(label);
    decl.labelLoc = loc(pos_ + lead);
    decl.labelLoc.node = decl.id;
    decl.hasLabel = true;
    pos_ = p + closer.size();
    return true;
  }

  // Records a mention of a node; returns its index in doc_.nodes.
  size_t addNode(NodeDecl decl) {
    size_t index;
    auto it = index_.find(decl.id);
    if (it == index_.end()) {
      index = doc_.nodes.size();
      index_.emplace(decl.id, index);
      doc_.nodes.push_back(decl);
    } else {
      index = it->second;
      NodeDecl& prev = doc_.nodes[index];
      if (decl.hasLabel) {
        if (!prev.hasLabel) {
          prev = decl;
        } else if (prev.label != decl.label || prev.shape != decl.shape) {
          const char* what = prev.label != decl.label ? "label" : "shape";
          error(decl.loc, "node '" + decl.id + "' is already declared with a different " + what);
          note(prev.loc, "previous declaration of '" + decl.id + "' is here");
        }
      }
    }
    if (!subgraphStack_.empty()) {
      if (subgraphMembers_.back().insert(decl.id).second)
        doc_.subgraphs[subgraphStack_.back()].nodes.push_back(decl.id);
    }
    return index;
  }

  // --- edges ----------------------------------------------------------------------------------

  // Counts repeats of c from p.
  size_t countRun(size_t p, char c) const {
    size_t n = 0;
    while (p + n < line_.size() && line_[p + n] == c) ++n;
    return n;
  }

  bool unsupportedEdge(size_t start, size_t end) {
    error(loc(start), "unsupported edge " + text::quoteToken(line_.substr(start, end - start)) +
                          "; shoal edges are -->, ---, -.-> and ==>");
    return false;
  }

  // An arrow at pos_ with its optional label.
  bool parseArrow(Arrow& arrow) {
    size_t start = pos_;
    arrow.loc = loc(start);
    char c = peek();
    bool labelled = false;  // `-- text -->` style, the label already read
    if (c == '<' && (peek(1) == '-' || peek(1) == '=' || peek(1) == '.')) {
      size_t end = pos_ + 1;
      while (end < line_.size() && isArrowChar(line_[end])) ++end;
      return unsupportedEdge(start, end);
    } else if (c == '~' && countRun(pos_, '~') >= 3) {
      pos_ += countRun(pos_, '~');
      arrow.invisible = true;
    } else if (c == '-') {
      size_t dashes = countRun(pos_, '-');
      size_t after = pos_ + dashes;
      char next = after < line_.size() ? line_[after] : '\0';
      if (dashes == 1 && next == '.') {
        size_t dots = countRun(after, '.');
        size_t q = after + dots;
        if (q < line_.size() && line_[q] == '-') {
          pos_ = q + 1;  // -.- or -.->
          if (peek() == '>') ++pos_;
        } else if (dots == 1) {
          pos_ = after + 1;  // -. text .->
          if (!parseInlineEdgeLabel(arrow, start, ".-", '.', ".->")) return false;
          labelled = true;
        } else {
          return noArrow(start);
        }
      } else if (dashes >= 2 && next == '>') {
        pos_ = after + 1;
      } else if (dashes >= 2 && (next == 'x' || next == 'o') &&
                 (dashes >= 3 || after + 1 >= line_.size() || isSpace(line_[after + 1]))) {
        return unsupportedEdge(start, after + 1);
      } else if (dashes >= 3) {
        pos_ = after;
      } else if (dashes == 2) {
        pos_ = after;
        if (!parseInlineEdgeLabel(arrow, start, "--", '-', "-->")) return false;
        labelled = true;
      } else {
        return noArrow(start);
      }
    } else if (c == '=') {
      size_t eqs = countRun(pos_, '=');
      size_t after = pos_ + eqs;
      char next = after < line_.size() ? line_[after] : '\0';
      if (eqs >= 2 && next == '>') {
        pos_ = after + 1;
      } else if (eqs >= 3) {
        pos_ = after;
      } else if (eqs == 2) {
        pos_ = after;
        if (!parseInlineEdgeLabel(arrow, start, "==", '=', "==>")) return false;
        labelled = true;
      } else {
        return noArrow(start);
      }
    } else {
      return noArrow(start);
    }

    size_t save = pos_;
    skipSpaces();
    if (peek() != '|') {
      pos_ = save;
      return true;
    }
    if (labelled) {
      error(loc(pos_), "edge already has a label");
      return false;
    }
    return parsePipeLabel(arrow);
  }

  bool noArrow(size_t at) {
    error(loc(at), "expected an edge ('-->'), '&' or end of statement, got " + describe(at));
    return false;
  }

  // `|label|` or `|"label"|`; pos_ is at the opening '|'.
  bool parsePipeLabel(Arrow& arrow) {
    size_t bar = pos_;
    ++pos_;
    size_t textStart = pos_;
    size_t textEnd;
    if (peek() == '"') {
      size_t close = line_.find('"', pos_ + 1);
      if (close == std::string_view::npos) {
        error(loc(pos_), "unterminated quoted edge label");
        return false;
      }
      textStart = pos_ + 1;
      textEnd = close;
      pos_ = close + 1;
      skipSpaces();
      if (peek() != '|') {
        error(loc(bar), "edge label not closed with '|'");
        return false;
      }
    } else {
      size_t p = pos_;
      for (; p < line_.size() && line_[p] != '|'; ++p) {
        if (isLabelForbidden(line_[p])) {
          error(loc(p), "unexpected '" + std::string(1, line_[p]) + "' in edge label; quote the label: -->|\"...\"|");
          return false;
        }
      }
      if (p >= line_.size()) {
        error(loc(bar), "edge label not closed with '|'");
        return false;
      }
      textEnd = p;
      pos_ = p;
    }
    ++pos_;  // the closing '|'
    return setEdgeLabel(arrow, textStart, textEnd, bar);
  }

  // Length of the closing arrow of an inline edge label at p, or 0. `closeLead` is the two
  // characters it begins with and `fill` the one that repeats in it: `-->` `---` `==>` `===`
  // `.->` `.-`.
  size_t closerLength(size_t p, std::string_view closeLead, char fill) const {
    if (!startsWith(p, closeLead)) return 0;
    if (fill == '.') return p + 2 < line_.size() && line_[p + 2] == '>' ? 3 : 2;
    size_t run = countRun(p, fill);
    char next = p + run < line_.size() ? line_[p + run] : '\0';
    if (next == '>') return run + 1;
    return run >= 3 ? run : 0;
  }

  // The text of `-- text -->` (also `-. text .->`, `== text ==>`); pos_ is just after the opening
  // token. `shown` is how the message spells the closer.
  bool parseInlineEdgeLabel(Arrow& arrow, size_t start, std::string_view closeLead, char fill, std::string_view shown) {
    skipSpaces();
    auto notClosed = [&] {
      error(loc(start), "edge label not closed with '" + std::string(shown) + "'");
      return false;
    };
    if (peek() == '"') {
      size_t close = line_.find('"', pos_ + 1);
      if (close == std::string_view::npos) {
        error(loc(pos_), "unterminated quoted edge label");
        return false;
      }
      size_t textStart = pos_ + 1;
      size_t p = close + 1;
      while (p < line_.size() && isSpace(line_[p])) ++p;
      size_t len = closerLength(p, closeLead, fill);
      if (len == 0) return notClosed();
      pos_ = p + len;
      return setEdgeLabel(arrow, textStart, close, start);
    }
    for (size_t p = pos_; p < line_.size(); ++p) {
      if (!startsWith(p, closeLead)) continue;
      size_t len = closerLength(p, closeLead, fill);
      if (len == 0) {  // `-- a -- b -->`: Mermaid refuses a bare `--` inside the text too
        error(loc(p), "expected '" + std::string(shown) + "' to close edge label, got " + describe(p));
        return false;
      }
      size_t textStart = pos_;
      pos_ = p + len;
      return setEdgeLabel(arrow, textStart, p, start);
    }
    return notClosed();
  }

  bool setEdgeLabel(Arrow& arrow, size_t textStart, size_t textEnd, size_t reportAt) {
    size_t lead;
    std::string_view label = trim(line_.substr(textStart, textEnd - textStart), lead);
    if (label.empty()) {
      error(loc(reportAt), "empty edge label");
      return false;
    }
    arrow.hasLabel = true;
    arrow.label = text::decodeEntities(label);
    arrow.labelLoc = loc(textStart + lead);
    return true;
  }

  std::string_view text_;
  const std::string& file_;
  DiagnosticEngine& diags_;
  Document doc_;
  int errors_ = 0;

  std::string_view line_;  // the current line, without its newline
  int lineNo_ = 0;
  size_t pos_ = 0;  // byte offset in line_

  std::unordered_map<std::string, size_t> index_;  // node id -> index in doc_.nodes
  std::vector<size_t> subgraphStack_;              // open subgraphs, innermost last
  std::vector<std::unordered_set<std::string>> subgraphMembers_;
};

}  // namespace

std::optional<Document> parse(std::string_view text, const std::string& file, DiagnosticEngine& diags) {
  diags.addSource(file, std::string(text));
  Parser parser(text, file, diags);
  return parser.run();
}

}  // namespace shoal::mermaid
