// IR text parser: line-oriented, one op per line, recovering at the next line after an error.
#include "ir/parser.h"

#include <cassert>
#include <charconv>
#include <limits>
#include <optional>
#include <set>

#include "ir/printer.h"

namespace shoal {

namespace {

bool isPlainChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
}
bool isIdentStart(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; }
bool isIdentChar(char c) { return isIdentStart(c) || (c >= '0' && c <= '9'); }

/// A cursor over one line with the first error it met (message and 0-based byte offset).
class LineCursor {
 public:
  explicit LineCursor(std::string_view line) : s_(line) {}

  size_t pos() const { return pos_; }
  void skipSpace() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t')) ++pos_;
  }
  /// True at the end of the line or at a trailing `//` comment.
  bool atEnd() {
    skipSpace();
    return pos_ >= s_.size() || s_.substr(pos_, 2) == "//";
  }
  bool peek(char c) {
    skipSpace();
    return pos_ < s_.size() && s_[pos_] == c;
  }
  bool eat(char c) {
    if (!peek(c)) return false;
    ++pos_;
    return true;
  }
  /// The longest run of [A-Za-z0-9_.-] here (possibly empty), consumed.
  std::string_view plainRun() {
    skipSpace();
    size_t start = pos_;
    while (pos_ < s_.size() && isPlainChar(s_[pos_])) ++pos_;
    return s_.substr(start, pos_ - start);
  }
  /// An identifier ([A-Za-z_][A-Za-z0-9_]*) here, consumed; empty if none.
  std::string_view ident() {
    skipSpace();
    size_t start = pos_;
    if (pos_ < s_.size() && isIdentStart(s_[pos_]))
      while (pos_ < s_.size() && isIdentChar(s_[pos_])) ++pos_;
    return s_.substr(start, pos_ - start);
  }
  /// True (without consuming) if the identifier `word` comes next.
  bool peekWord(std::string_view word) {
    skipSpace();
    if (s_.substr(pos_, word.size()) != word) return false;
    size_t end = pos_ + word.size();
    return end >= s_.size() || !isIdentChar(s_[end]);
  }

  /// "end of line" or the next token quoted, for "expected X, got Y" messages.
  std::string describeNext() {
    if (atEnd()) return "end of line";
    size_t end = pos_;
    if (isPlainChar(s_[end])) {
      while (end < s_.size() && isPlainChar(s_[end])) ++end;
    } else {
      ++end;  // one character; a UTF-8 sequence stays whole
      while (end < s_.size() && (static_cast<unsigned char>(s_[end]) & 0xC0) == 0x80) ++end;
    }
    return "'" + std::string(s_.substr(pos_, end - pos_)) + "'";
  }

  /// Records an error at `at` (the first one wins); always returns false.
  bool failAt(std::string message, size_t at) {
    if (!error_) {
      error_ = std::move(message);
      errorPos_ = at;
    }
    return false;
  }
  /// Records "`what`, got <next token>" at the next token.
  bool failExpected(const std::string& what) {
    std::string got = describeNext();
    return failAt("expected " + what + ", got " + got, pos_);
  }
  bool expect(char c, const std::string& context) {
    if (eat(c)) return true;
    return failExpected(std::string("'") + c + "'" + (context.empty() ? "" : " " + context));
  }

  /// A quoted string here (the escapes of attrValueString: `\n` is a newline, `\X` is X).
  std::optional<std::string> quoted() {
    if (!peek('"')) {
      failExpected("a quoted string");
      return std::nullopt;
    }
    size_t start = pos_++;
    std::string out;
    while (pos_ < s_.size() && s_[pos_] != '"') {
      char c = s_[pos_++];
      if (c == '\\' && pos_ < s_.size()) {
        char e = s_[pos_++];
        out += e == 'n' ? '\n' : e;
      } else {
        out += c;
      }
    }
    if (pos_ >= s_.size()) {
      failAt("unterminated string", start);
      return std::nullopt;
    }
    ++pos_;
    return out;
  }

  /// `%name` or `%"name"`.
  std::optional<std::string> valueName() {
    size_t start = pos_;
    if (!eat('%')) {
      failExpected("a value name ('%name')");
      return std::nullopt;
    }
    if (pos_ < s_.size() && s_[pos_] == '"') {
      auto name = quoted();
      if (name && name->empty()) {
        failAt("empty value name", start);
        return std::nullopt;
      }
      return name;
    }
    size_t nameStart = pos_;
    while (pos_ < s_.size() && isPlainChar(s_[pos_])) ++pos_;
    if (pos_ == nameStart) {
      failExpected("a value name after '%'");
      return std::nullopt;
    }
    return std::string(s_.substr(nameStart, pos_ - nameStart));
  }

  /// A signed decimal integer.
  std::optional<int64_t> integer() {
    skipSpace();
    int64_t v = 0;
    auto r = std::from_chars(s_.data() + pos_, s_.data() + s_.size(), v);
    if (r.ec != std::errc() || r.ptr == s_.data() + pos_) return std::nullopt;
    pos_ = size_t(r.ptr - s_.data());
    return v;
  }

  /// The raw text of an attribute value: up to the next ',' or '}' outside brackets, angle
  /// brackets and quotes (or the end of the line), trailing blanks trimmed. nullopt (and an
  /// error) for a string that is not closed on the line.
  std::optional<std::string_view> attrValueSpan() {
    skipSpace();
    size_t start = pos_;
    int depth = 0;
    bool inQuote = false;
    size_t quoteStart = 0;
    while (pos_ < s_.size()) {
      char c = s_[pos_];
      if (inQuote) {
        if (c == '\\')
          ++pos_;
        else if (c == '"')
          inQuote = false;
      } else if (c == '"') {
        inQuote = true;
        quoteStart = pos_;
      } else if (c == '[' || c == '<') {
        ++depth;
      } else if (c == ']' || c == '>') {
        if (depth > 0) --depth;
      } else if (depth == 0 && (c == ',' || c == '}')) {
        break;
      }
      ++pos_;
    }
    if (pos_ > s_.size()) pos_ = s_.size();
    if (inQuote) {
      failAt("unterminated string", quoteStart);
      return std::nullopt;
    }
    size_t end = pos_;
    while (end > start && (s_[end - 1] == ' ' || s_[end - 1] == '\t')) --end;
    return s_.substr(start, end - start);
  }

  const std::optional<std::string>& error() const { return error_; }
  size_t errorPos() const { return errorPos_; }

 private:
  std::string_view s_;
  size_t pos_ = 0;
  std::optional<std::string> error_;
  size_t errorPos_ = 0;
};

/// A name written where a graph name or attribute key goes: plain run or quoted string.
std::optional<std::string> plainOrQuoted(LineCursor& c, const std::string& what) {
  if (c.peek('"')) return c.quoted();
  std::string_view run = c.plainRun();
  if (run.empty()) {
    c.failExpected(what);
    return std::nullopt;
  }
  return std::string(run);
}

/// `graph NAME {` (the cursor at the first non-blank character).
std::optional<std::string> parseHeader(LineCursor& c) {
  if (!c.peekWord("graph")) {
    c.failExpected("'graph NAME {'");
    return std::nullopt;
  }
  c.ident();
  auto name = plainOrQuoted(c, "a graph name after 'graph'");
  if (!name) return std::nullopt;
  if (!c.expect('{', "after the graph name")) return std::nullopt;
  if (!c.atEnd()) {
    c.failExpected("end of line after '{'");
    return std::nullopt;
  }
  return name;
}

struct NamedPos {
  std::string name;
  size_t pos = 0;
};

/// One op line, as written (before any check against the op table).
struct OpLine {
  std::vector<NamedPos> results;
  std::string op;
  size_t opPos = 0;
  std::vector<NamedPos> operands;
  Attrs attrs;
  bool hasTypes = false;
  size_t typesPos = 0;  ///< the ':' (or where it should be)
  std::vector<TensorType> types;
  Location loc;
};

bool parseAttrs(LineCursor& c, Attrs& attrs) {
  if (c.eat('}')) return true;
  while (true) {
    c.skipSpace();
    size_t keyPos = c.pos();
    auto key = plainOrQuoted(c, "an attribute name");
    if (!key) return false;
    if (!c.expect('=', "after attribute '" + *key + "'")) return false;
    c.skipSpace();
    size_t valuePos = c.pos();
    auto spanOrError = c.attrValueSpan();
    if (!spanOrError) return false;
    std::string_view span = *spanOrError;
    if (span.empty()) return c.failAt("expected a value for attribute '" + *key + "'", valuePos);
    auto value = parseAttrValue(span);
    if (!value) return c.failAt("invalid value for attribute '" + *key + "': " + std::string(span), valuePos);
    if (attrs.has(*key)) return c.failAt("duplicate attribute '" + *key + "'", keyPos);
    attrs.set(*key, std::move(*value));
    if (c.eat(',')) continue;
    if (c.eat('}')) return true;
    return c.failExpected("',' or '}' after attribute '" + *key + "'");
  }
}

bool parseType(LineCursor& c, OpLine& line) {
  c.skipSpace();
  size_t typePos = c.pos();
  std::string_view dtypeName = c.ident();
  if (dtypeName.empty()) return c.failExpected("a result type");
  auto dtype = parseDType(dtypeName);
  if (!dtype) return c.failAt("unknown element type '" + std::string(dtypeName) + "'", typePos);
  if (!c.expect('[', "after the element type")) return false;
  TensorType type{*dtype, {}};
  if (!c.eat(']')) {
    while (true) {
      c.skipSpace();
      size_t extentPos = c.pos();
      auto extent = c.integer();
      if (!extent) return c.failExpected("an extent");
      if (*extent < 0) return c.failAt("negative extent " + std::to_string(*extent), extentPos);
      type.shape.push_back(*extent);
      if (c.eat(',')) continue;
      if (!c.expect(']', "after the extents")) return false;
      break;
    }
  }
  line.types.push_back(std::move(type));
  return true;
}

bool parseLoc(LineCursor& c, Location& loc) {
  c.ident();  // "loc"
  if (!c.expect('(', "after 'loc'")) return false;
  if (c.peek('"')) {
    auto file = c.quoted();
    if (!file) return false;
    loc.file = *file;
    if (c.eat(':')) {
      c.skipSpace();
      size_t linePos = c.pos();
      auto line = c.integer();
      if (!line) return c.failExpected("a line number");
      if (!c.expect(':', "after the line number")) return false;
      c.skipSpace();
      size_t colPos = c.pos();
      auto col = c.integer();
      if (!col) return c.failExpected("a column number");
      if (*line < 0 || *line > std::numeric_limits<int>::max()) return c.failAt("line number out of range", linePos);
      if (*col < 0 || *col > std::numeric_limits<int>::max()) return c.failAt("column number out of range", colPos);
      loc.line = int(*line);
      loc.col = int(*col);
    }
  }
  if (c.peekWord("node")) {
    c.ident();
    if (!c.expect('=', "after 'node'")) return false;
    auto node = c.quoted();
    if (!node) return false;
    loc.node = *node;
  }
  return c.expect(')', "to close 'loc('");
}

/// The syntax of one op line.
bool parseOpLine(LineCursor& c, OpLine& line) {
  if (c.peek('%')) {
    while (true) {
      c.skipSpace();
      size_t at = c.pos();
      auto name = c.valueName();
      if (!name) return false;
      line.results.push_back({*name, at});
      if (!c.eat(',')) break;
    }
    if (!c.expect('=', "after the result names")) return false;
  }
  c.skipSpace();
  line.opPos = c.pos();
  line.op = std::string(c.ident());
  if (line.op.empty()) return c.failExpected(line.results.empty() ? "an op name or '%result ='" : "an op name");
  if (!c.expect('(', "after '" + line.op + "'")) return false;
  if (!c.eat(')')) {
    while (true) {
      c.skipSpace();
      size_t at = c.pos();
      if (!c.peek('%')) return c.failExpected("an operand ('%name')");
      auto name = c.valueName();
      if (!name) return false;
      line.operands.push_back({*name, at});
      if (c.eat(',')) continue;
      if (!c.expect(')', "after the operands")) return false;
      break;
    }
  }
  if (c.eat('{') && !parseAttrs(c, line.attrs)) return false;
  c.skipSpace();
  line.typesPos = c.pos();
  if (c.eat(':')) {
    line.hasTypes = true;
    do {
      if (!parseType(c, line)) return false;
    } while (c.eat(','));
  }
  if (c.peekWord("loc") && !parseLoc(c, line.loc)) return false;
  if (!c.atEnd()) return c.failExpected("end of line");
  return true;
}

std::string countNoun(int n, const char* noun) { return std::to_string(n) + " " + noun + (n == 1 ? "" : "s"); }

/// Builds a graph line by line, then reads the pipeline settings block after it, if any.
class Parser {
 public:
  /// `settings` (may be null: the block is checked, then dropped) receives the block's sections.
  Parser(std::string_view text, const std::string& file, DiagnosticEngine& diags, Pipeline* settings)
      : text_(text), file_(file), diags_(diags), settings_(settings) {}

  /// A graph `name` from op lines written elsewhere (a flowchart's labels), each with the place
  /// its text starts; an op line without loc(...) gets that place as its location.
  std::unique_ptr<Graph> runLines(const std::string& name, const std::vector<IrLine>& lines) {
    graph_ = std::make_unique<Graph>(name);
    for (const IrLine& line : lines) {
      LineCursor c(line.text);
      if (c.atEnd()) continue;
      size_t before = graph_->size();
      parseOpAt(c, line.loc);
      const bool located = graph_->size() > before && (graph_->nodes().back()->loc().known() ||
                                                       !graph_->nodes().back()->loc().file.empty() ||
                                                       !graph_->nodes().back()->loc().node.empty());
      if (graph_->size() > before && !located) {
        Location loc = line.loc;
        loc.node.clear();
        graph_->nodes().back()->setLoc(loc);
      }
    }
    if (failed_) return nullptr;
    return std::move(graph_);
  }

  std::unique_ptr<Graph> run() {
    enum class State { BeforeHeader, InBody, AfterBody, InSettings, AfterSettings };
    State state = State::BeforeHeader;
    std::vector<std::string_view> lines = splitLines(text_);
    for (size_t i = 0; i < lines.size(); ++i) {
      int lineNo = int(i) + 1;
      LineCursor c(lines[i]);
      if (c.atEnd()) continue;  // blank or comment
      if (state == State::BeforeHeader) {
        auto name = parseHeader(c);
        if (!name) {
          reportLine(c, lineNo);
          return nullptr;  // not IR text at all: one error is enough
        }
        graph_ = std::make_unique<Graph>(*name);
        state = State::InBody;
      } else if (state == State::InBody) {
        if (c.eat('}')) {
          state = State::AfterBody;
          if (!c.atEnd()) {
            c.failExpected("end of line after the closing '}'");
            reportLine(c, lineNo);
          }
          continue;
        }
        parseOp(c, lineNo);
      } else if (state == State::AfterBody && c.peekWord("pipeline")) {
        c.ident();
        bool ok = c.expect('{', "after 'pipeline'");
        if (ok && !c.atEnd()) ok = c.failExpected("end of line after '{'");
        if (!ok) {
          reportLine(c, lineNo);
          break;
        }
        state = State::InSettings;
      } else if (state == State::InSettings) {
        if (c.eat('}')) {
          state = State::AfterSettings;
          if (!c.atEnd()) {
            c.failExpected("end of line after the closing '}'");
            reportLine(c, lineNo);
          }
          continue;
        }
        parseSetting(c, lineNo);
      } else {
        c.failAt(state == State::AfterBody ? "unexpected text after the end of graph '" + graph_->name() +
                                                 "' (only a 'pipeline {' settings block may follow)"
                                           : std::string("unexpected text after the pipeline settings block"),
                 c.pos());
        reportLine(c, lineNo);
        break;
      }
    }
    if (state == State::InSettings) {
      diags_.error(Location{file_, int(lines.size()), int(lines.back().size()) + 1, ""},
                   "expected '}' to close the pipeline settings block, got end of file");
      failed_ = true;
    } else if (state != State::AfterBody && state != State::AfterSettings) {
      std::string_view last = lines.back();
      Location end{file_, int(lines.size()), int(last.size()) + 1, ""};
      if (state == State::BeforeHeader)
        diags_.error(end, "expected 'graph NAME {', got end of file");
      else
        diags_.error(end, "expected '}' to close graph '" + graph_->name() + "', got end of file");
      failed_ = true;
    }
    if (failed_) return nullptr;
    return std::move(graph_);
  }

 private:
  static std::vector<std::string_view> splitLines(std::string_view text) {
    std::vector<std::string_view> lines;
    size_t start = 0;
    while (true) {
      size_t nl = text.find('\n', start);
      if (nl == std::string_view::npos) {
        if (start < text.size() || lines.empty()) lines.push_back(text.substr(start));
        break;
      }
      lines.push_back(text.substr(start, nl - start));
      start = nl + 1;
    }
    for (auto& l : lines)
      if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
    return lines;
  }

  void reportLine(const LineCursor& c, int lineNo) { reportAt(c, Location{file_, lineNo, 1, ""}); }
  // The cursor's error, at its column counted from `start` (where the line's text begins).
  void reportAt(const LineCursor& c, const Location& start) {
    assert(c.error() && "reporting a line without an error");
    Location at = start;
    at.col += int(c.errorPos());
    diags_.error(at, *c.error());
    failed_ = true;
  }

  bool isDefined(const std::string& name) const { return graph_->findValue(name) || poisoned_.count(name); }

  // One line of the settings block: `section {key=value, ...}`, set on the pipeline (errors
  // are located at the section's name).
  void parseSetting(LineCursor& c, int lineNo) {
    c.skipSpace();
    const size_t at = c.pos();
    std::string section(c.ident());
    Attrs attrs;
    bool ok = !section.empty() || c.failExpected("a settings section name (data, train, output, model)");
    ok = ok && c.expect('{', "after '" + section + "'") && parseAttrs(c, attrs);
    if (ok && !c.atEnd()) ok = c.failExpected("end of line");
    if (!ok) return reportLine(c, lineNo);
    Pipeline scratch;
    auto set = setPipelineSection(settings_ ? *settings_ : scratch, section, attrs, Location{file_, lineNo, int(at) + 1, ""});
    if (!set) {
      diags_.report(set.error());
      failed_ = true;
    }
  }

  // Parses and checks one op line; on success appends the node, on failure reports (unless
  // the line only fails because an operand's own line failed) and poisons its result names
  // so that later uses are not reported again.
  void parseOp(LineCursor& c, int lineNo) { parseOpAt(c, Location{file_, lineNo, 1, ""}); }
  void parseOpAt(LineCursor& c, const Location& start) {
    OpLine line;
    bool ok = parseOpLine(c, line) && checkOpLine(c, line);
    bool silent = ok && usesPoisoned(line);
    if (ok && !silent) {
      addNode(line);
      return;
    }
    if (!ok) reportAt(c, start);
    failed_ = true;
    for (const NamedPos& r : line.results)
      if (!graph_->findValue(r.name)) poisoned_.insert(r.name);
  }

  bool usesPoisoned(const OpLine& line) const {
    for (const NamedPos& o : line.operands)
      if (!graph_->findValue(o.name)) return true;  // checkOpLine let it through: poisoned
    return false;
  }

  bool checkOpLine(LineCursor& c, const OpLine& line) {
    auto kind = opKindFromName(line.op);
    if (!kind) return c.failAt("unknown op '" + line.op + "'", line.opPos);
    const OpInfo& info = opInfo(*kind);
    int numResults = int(line.results.size());
    if (numResults != info.numResults) {
      std::string expected = info.numResults == 0 ? "no results" : countNoun(info.numResults, "result");
      return c.failAt("'" + line.op + "' produces " + expected + ", got " + std::to_string(numResults), line.opPos);
    }
    int numInputs = int(line.operands.size());
    if (numInputs < info.minInputs || numInputs > info.maxInputs) {
      std::string expected = info.maxInputs == 0                ? "no operands"
                             : info.minInputs == info.maxInputs ? countNoun(info.minInputs, "operand")
                                                                : std::to_string(info.minInputs) + " to " +
                                                                      std::to_string(info.maxInputs) + " operands";
      return c.failAt("'" + line.op + "' takes " + expected + ", got " + std::to_string(numInputs), line.opPos);
    }
    if (numResults > 0 && !line.hasTypes)
      return c.failAt("expected ':' and " + countNoun(numResults, "result type") + " after the op", line.typesPos);
    if (int(line.types.size()) != numResults)
      return c.failAt("expected " + countNoun(numResults, "result type") + ", got " + std::to_string(line.types.size()),
                      line.typesPos);
    for (const NamedPos& o : line.operands)
      if (!graph_->findValue(o.name) && !poisoned_.count(o.name))
        return c.failAt("use of undefined value '" + printValueName(o.name) + "'", o.pos);
    for (size_t i = 0; i < line.results.size(); ++i) {
      const NamedPos& r = line.results[i];
      bool repeated = false;
      for (size_t j = 0; j < i; ++j) repeated = repeated || line.results[j].name == r.name;
      if (repeated || isDefined(r.name))
        return c.failAt("redefinition of value '" + printValueName(r.name) + "'", r.pos);
    }
    return true;
  }

  void addNode(OpLine& line) {
    OpKind kind = *opKindFromName(line.op);
    // An int written for a float attribute is that float (the schema defaults are read the same way).
    for (const AttrSpec& spec : opInfo(kind).attrs) {
      const AttrValue* v = line.attrs.find(spec.name);
      if (!v) continue;
      if (spec.kind == AttrKind::Float && std::holds_alternative<int64_t>(*v)) {
        line.attrs.set(spec.name, double(std::get<int64_t>(*v)));
      } else if (spec.kind == AttrKind::Floats && std::holds_alternative<std::vector<int64_t>>(*v)) {
        const auto& ints = std::get<std::vector<int64_t>>(*v);
        line.attrs.set(spec.name, std::vector<double>(ints.begin(), ints.end()));
      }
    }
    std::vector<Value*> inputs;
    for (const NamedPos& o : line.operands) inputs.push_back(graph_->findValue(o.name));
    std::vector<ResultSpec> results;
    for (size_t i = 0; i < line.results.size(); ++i) results.push_back({line.results[i].name, line.types[i]});
    Node* n = graph_->addNode(kind, std::move(inputs), std::move(line.attrs), std::move(results), std::move(line.loc));
    // An attribute left out means its schema default (`conv2d(%x, %w) {dilation=[1,1]}` has
    // stride [1,1] and no padding), as the printer would have written it.
    fillDefaultAttrs(*n);
    for (size_t i = 0; i < n->numResults(); ++i)
      assert(n->result(i)->name() == line.results[i].name && "a checked result name was renamed");
    (void)n;
  }

  std::string_view text_;
  std::string file_;
  DiagnosticEngine& diags_;
  std::unique_ptr<Graph> graph_;
  Pipeline* settings_;
  std::set<std::string> poisoned_;  ///< results of lines that failed
  bool failed_ = false;
};

}  // namespace

std::unique_ptr<Graph> parseGraph(std::string_view text, const std::string& file, DiagnosticEngine& diags) {
  if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);  // a UTF-8 byte-order mark: columns skip it
  diags.addSource(file, std::string(text));
  return Parser(text, file, diags, nullptr).run();
}

std::unique_ptr<Graph> parseGraphLines(const std::string& name, const std::vector<IrLine>& lines, DiagnosticEngine& diags) {
  return Parser("", "", diags, nullptr).runLines(name, lines);
}

std::optional<Pipeline> parsePipelineText(std::string_view text, const std::string& file, DiagnosticEngine& diags) {
  if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);
  diags.addSource(file, std::string(text));
  Pipeline p;
  p.file = file;
  p.model = Parser(text, file, diags, &p).run();
  if (!p.model) return std::nullopt;
  return p;
}

bool looksLikeIrText(std::string_view text) {
  if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);
  size_t start = 0;
  while (start <= text.size()) {
    size_t nl = text.find('\n', start);
    std::string_view line = text.substr(start, nl == std::string_view::npos ? std::string_view::npos : nl - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    LineCursor c(line);
    if (!c.atEnd()) return parseHeader(c).has_value();
    if (nl == std::string_view::npos) break;
    start = nl + 1;
  }
  return false;
}

}  // namespace shoal
