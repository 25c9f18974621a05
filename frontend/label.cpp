// Parser for node labels (`conv2d: filters=32 kernel=3x3`) into an op name and typed values.
#include "frontend/label.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <system_error>
#include <unordered_map>

#include "frontend/mermaid.h"

namespace shoal::mermaid {

const LabelArg* ParsedLabel::find(std::string_view key) const {
  for (const LabelArg& a : args)
    if (a.key == key) return &a;
  return nullptr;
}

namespace {

constexpr int kMaxTensorDepth = 32;

bool isLabelSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'; }
bool isDigit(char c) { return c >= '0' && c <= '9'; }
bool isKeyStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool isKeyChar(char c) { return isKeyStart(c) || isDigit(c); }

// A number as written: an integer, or anything else (float, fraction) as a double.
struct Number {
  bool isInt = false;
  int64_t i = 0;
  double d = 0;
};

// Digit, '-digit', '.digit' or '-.digit': the text means to be a number.
bool looksNumeric(std::string_view s) {
  size_t i = 0;
  if (i < s.size() && s[i] == '-') ++i;
  if (i < s.size() && s[i] == '.') ++i;
  return i < s.size() && isDigit(s[i]);
}

bool allDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return isDigit(c); });
}

// An integer `-12` or a float `0.5` `1e-3` `-.5` `2.`; no fraction. Sets `err` on failure.
std::optional<Number> parsePlainNumber(std::string_view s, std::string& err) {
  size_t i = 0;
  if (i < s.size() && s[i] == '-') ++i;
  size_t intDigits = 0, fracDigits = 0;
  while (i < s.size() && isDigit(s[i])) ++i, ++intDigits;
  bool isFloat = false;
  if (i < s.size() && s[i] == '.') {
    isFloat = true;
    ++i;
    while (i < s.size() && isDigit(s[i])) ++i, ++fracDigits;
  }
  if (intDigits + fracDigits == 0) {
    err = "malformed number " + text::quoteToken(s);
    return std::nullopt;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    isFloat = true;
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    size_t expDigits = 0;
    while (i < s.size() && isDigit(s[i])) ++i, ++expDigits;
    if (expDigits == 0) i = s.size() + 1;  // force the error below
  }
  if (i != s.size()) {
    err = "malformed number " + text::quoteToken(s);
    return std::nullopt;
  }
  Number n;
  const char* first = s.data();
  const char* last = s.data() + s.size();
  if (!isFloat) {
    auto res = std::from_chars(first, last, n.i);
    if (res.ec != std::errc() || res.ptr != last) {
      err = "integer " + text::quoteToken(s) + " is out of range";
      return std::nullopt;
    }
    n.isInt = true;
    n.d = double(n.i);
    return n;
  }
  auto res = std::from_chars(first, last, n.d);
  if (res.ec != std::errc() || res.ptr != last || !std::isfinite(n.d)) {
    err = "number " + text::quoteToken(s) + " is out of range";
    return std::nullopt;
  }
  return n;
}

// A plain number or a fraction `1/255` (always a double).
std::optional<Number> parseNumber(std::string_view s, std::string& err) {
  size_t slash = s.find('/');
  if (slash == std::string_view::npos) return parsePlainNumber(s, err);
  std::string_view num = s.substr(0, slash), den = s.substr(slash + 1);
  std::string ignored;
  auto a = parsePlainNumber(num, ignored);
  auto b = den.find('/') == std::string_view::npos ? parsePlainNumber(den, ignored) : std::nullopt;
  if (!a || !b) {
    err = "malformed fraction " + text::quoteToken(s);
    return std::nullopt;
  }
  if (b->d == 0) {
    err = "division by zero in fraction " + text::quoteToken(s);
    return std::nullopt;
  }
  Number n;
  n.d = a->d / b->d;
  return n;
}

class LabelParser {
 public:
  LabelParser(std::string_view text, Location base, DiagnosticEngine& diags)
      : text_(text), base_(std::move(base)), diags_(diags) {
    for (size_t i = text_.find('\n'); i != std::string_view::npos; i = text_.find('\n', i + 1))
      lineStarts_.push_back(i + 1);
  }

  std::optional<ParsedLabel> run() {
    skipSpaces();
    size_t opStart = pos_;
    size_t n = text::wordLength(text_, pos_);
    if (n == 0) {
      error(opStart, "expected an op name, got " + describe(opStart));
      return std::nullopt;
    }
    label_.op = std::string(text_.substr(pos_, n));
    label_.opLoc = loc(opStart);
    pos_ += n;
    skipSpaces();
    if (peek() == '=') {
      error(opStart, "expected an op name, got argument " + text::quoteToken(label_.op + "="));
      return std::nullopt;
    }
    if (peek() == ':') {
      ++pos_;
    } else if (text_.substr(pos_).starts_with("\xEF\xBC\x9A")) {  // full-width colon '：'
      pos_ += 3;
    } else if (pos_ == opStart + n && !atEnd()) {
      error(pos_, "expected ':' or a space after op name '" + label_.op + "', got " + describe(pos_));
      return std::nullopt;
    }

    for (;;) {
      skipSpaces();
      if (atEnd()) break;
      if (!parseArg()) {
        if (fatal_) break;
        while (!atEnd() && !isLabelSpace(peek())) ++pos_;  // recover at the next argument
      }
    }
    if (errors_ > 0) return std::nullopt;
    return std::move(label_);
  }

 private:
  Location loc(size_t p) const {
    Location l = base_;
    auto it = std::upper_bound(lineStarts_.begin(), lineStarts_.end(), p);
    if (it == lineStarts_.begin()) {
      l.col = base_.col + int(p);
    } else {
      l.line = base_.line + int(it - lineStarts_.begin());
      l.col = int(p - *(it - 1)) + 1;
    }
    return l;
  }
  bool atEnd() const { return pos_ >= text_.size(); }
  char peek(size_t ahead = 0) const { return pos_ + ahead < text_.size() ? text_[pos_ + ahead] : '\0'; }
  void skipSpaces() {
    while (pos_ < text_.size() && isLabelSpace(text_[pos_])) ++pos_;
  }
  void error(size_t p, std::string message) {
    ++errors_;
    diags_.error(loc(p), std::move(message));
  }
  // A note for the error just reported; dropped with it once the engine stops keeping errors.
  void note(Location where, std::string message) {
    if (diags_.errorCount() <= DiagnosticEngine::kMaxErrors) diags_.note(std::move(where), std::move(message));
  }
  std::string describe(size_t p) const {
    if (p >= text_.size()) return "end of label";
    size_t n = text::wordLength(text_, p);
    if (n == 0) {
      char32_t cp;
      n = text::decodeUtf8(text_, p, cp);
    }
    return text::quoteToken(text_.substr(p, n));
  }

  // key=value or a positional value.
  bool parseArg() {
    size_t start = pos_;
    if (isKeyStart(peek())) {
      size_t k = pos_;
      while (k < text_.size() && isKeyChar(text_[k])) ++k;
      size_t eq = k;
      while (eq < text_.size() && (text_[eq] == ' ' || text_[eq] == '\t')) ++eq;
      if (eq < text_.size() && text_[eq] == '=') {
        std::string key(text_.substr(start, k - start));
        pos_ = eq + 1;
        while (!atEnd() && (peek() == ' ' || peek() == '\t')) ++pos_;
        size_t v = pos_;
        while (v < text_.size() && isKeyChar(text_[v])) ++v;
        bool nextIsArg = v > pos_ && v < text_.size() && text_[v] == '=';  // `units= act=relu`
        if (atEnd() || isLabelSpace(peek()) || nextIsArg) {
          error(pos_, "expected a value after '" + key + "='");
          return false;
        }
        LabelArg arg;
        arg.key = key;
        arg.loc = loc(start);
        arg.valueLoc = loc(pos_);
        auto value = parseValue();
        if (!value) return false;
        arg.value = std::move(*value);
        auto [it, fresh] = keys_.emplace(key, label_.args.size());
        if (!fresh) {
          error(start, "duplicate key '" + key + "'");
          note(label_.args[it->second].loc, "'" + key + "' was first given here");
          return true;
        }
        label_.args.push_back(std::move(arg));
        return true;
      }
      if (k < text_.size() && text_[k] == ':') {
        error(k, "expected '=' after '" + std::string(text_.substr(start, k - start)) + "', got ':'");
        return false;
      }
    } else if (peek() == '=') {
      error(pos_, "expected a key before '='");
      return false;
    }
    LabelArg arg;
    arg.loc = loc(start);
    arg.valueLoc = arg.loc;
    auto value = parseValue();
    if (!value) return false;
    arg.value = std::move(*value);
    label_.positional.push_back(std::move(arg));
    return true;
  }

  // Any value at pos_; leaves pos_ after it, at a space or the end.
  std::optional<AttrValue> parseValue() {
    char c = peek();
    std::optional<AttrValue> value;
    if (c == '"' || c == '\'') {
      value = parseQuoted();
    } else if (c == '[') {
      value = parseTensor();
    } else {
      size_t start = pos_;
      while (!atEnd() && !isLabelSpace(peek())) ++pos_;
      return parseBare(start, pos_);
    }
    if (!value) return std::nullopt;
    if (!atEnd() && !isLabelSpace(peek())) {
      error(pos_, std::string("expected a space after ") + (c == '[' ? "tensor literal" : "quoted string") +
                      ", got " + describe(pos_));
      return std::nullopt;
    }
    return value;
  }

  // "..." or '...' with \" \' \\ escapes.
  std::optional<AttrValue> parseQuoted() {
    size_t open = pos_;
    char quote = text_[pos_++];
    std::string out;
    while (!atEnd()) {
      char c = text_[pos_++];
      if (c == quote) return AttrValue(std::move(out));
      if (c == '\\' && (peek() == quote || peek() == '\\')) c = text_[pos_++];
      out += c;
    }
    error(open, "unterminated quoted string");
    fatal_ = true;
    return std::nullopt;
  }

  // A value without quotes or brackets, text_[start, end): number, fraction, shape, list, word.
  std::optional<AttrValue> parseBare(size_t start, size_t end) {
    std::string_view s = text_.substr(start, end - start);
    std::string err;
    if (s.find(',') != std::string_view::npos) return parseList(start, end);
    if (looksNumeric(s)) {
      if (s.find('x') != std::string_view::npos) return parseShape(start, end);
      auto n = parseNumber(s, err);
      if (!n) {
        error(start, err);
        return std::nullopt;
      }
      if (n->isInt) return AttrValue(n->i);
      return AttrValue(n->d);
    }
    if (!checkWord(start, end)) return std::nullopt;
    return AttrValue(std::string(s));
  }

  // A word value: letters, digits, '_', '-', '.', '/', non-ASCII letters.
  bool checkWord(size_t start, size_t end) {
    for (size_t p = start; p < end;) {
      char c = text_[p];
      if (c == '-' || c == '.' || c == '/') {
        ++p;
        continue;
      }
      size_t n = text::wordLength(text_.substr(0, end), p);
      if (n > 0) {
        p += n;
        continue;
      }
      char32_t cp;
      size_t len = text::decodeUtf8(text_, p, cp);
      error(p, "unexpected character " + text::quoteToken(text_.substr(p, len)) + " in value " +
                   text::quoteToken(text_.substr(start, end - start)));
      return false;
    }
    return true;
  }

  // 3x3, 1x28x28: non-negative integers joined by 'x'.
  std::optional<AttrValue> parseShape(size_t start, size_t end) {
    std::string_view s = text_.substr(start, end - start);
    std::vector<int64_t> dims;
    for (size_t p = 0; p <= s.size();) {
      size_t x = std::min(s.find('x', p), s.size());
      std::string_view part = s.substr(p, x - p);
      if (!allDigits(part)) {
        error(start, "malformed shape " + text::quoteToken(s) + " (write extents as 3x3 or 1x28x28)");
        return std::nullopt;
      }
      int64_t v = 0;
      auto res = std::from_chars(part.data(), part.data() + part.size(), v);
      if (res.ec != std::errc()) {
        error(start + p, "integer " + text::quoteToken(part) + " is out of range");
        return std::nullopt;
      }
      dims.push_back(v);
      p = x + 1;
    }
    return AttrValue(std::move(dims));
  }

  // 1,2,3 (ints), 0.5,1e-3 or 1/3,2/3 (floats), accuracy,loss (a word list, kept as one string).
  std::optional<AttrValue> parseList(size_t start, size_t end) {
    std::string_view s = text_.substr(start, end - start);
    bool numeric = false;
    for (size_t p = 0; p <= s.size();) {
      size_t comma = std::min(s.find(',', p), s.size());
      numeric = numeric || looksNumeric(s.substr(p, comma - p));
      p = comma + 1;
    }
    std::vector<int64_t> ints;
    std::vector<double> doubles;
    bool allInts = true;
    for (size_t p = 0; p <= s.size();) {
      size_t comma = std::min(s.find(',', p), s.size());
      std::string_view item = s.substr(p, comma - p);
      if (item.empty()) {
        error(start + p, "empty element in list " + text::quoteToken(s));
        return std::nullopt;
      }
      if (!numeric) {
        if (!checkWord(start + p, start + comma)) return std::nullopt;
      } else if (!looksNumeric(item)) {
        error(start + p, "expected a number in list " + text::quoteToken(s) + ", got " + text::quoteToken(item));
        return std::nullopt;
      } else {
        std::string err;
        auto n = parseNumber(item, err);
        if (!n) {
          error(start + p, err);
          return std::nullopt;
        }
        allInts = allInts && n->isInt;
        ints.push_back(n->i);
        doubles.push_back(n->d);
      }
      p = comma + 1;
    }
    if (!numeric) return AttrValue(std::string(s));
    if (allInts) return AttrValue(std::move(ints));
    return AttrValue(std::move(doubles));
  }

  // [[1,2],[3,4]] -> TensorLiteral{shape [2,2]}; errors are fatal to the label.
  std::optional<AttrValue> parseTensor() {
    TensorLiteral t;
    auto shape = parseTensorList(0, t.values);
    if (!shape) {
      fatal_ = true;
      return std::nullopt;
    }
    t.shape = std::move(*shape);
    return AttrValue(std::move(t));
  }

  // One bracketed list at pos_ ('['); appends its numbers to `values`; returns its shape.
  std::optional<Shape> parseTensorList(int depth, std::vector<double>& values) {
    size_t open = pos_;
    if (depth >= kMaxTensorDepth) {
      error(open, "tensor literal is nested too deeply (more than " + std::to_string(kMaxTensorDepth) + " levels)");
      return std::nullopt;
    }
    ++pos_;
    skipSpaces();
    if (peek() == ']') {
      ++pos_;
      return Shape{0};
    }
    std::optional<Shape> first;  // shape of the first element; every sibling must match it
    bool firstIsList = false;
    int64_t count = 0;
    for (;;) {
      skipSpaces();
      size_t elemPos = pos_;
      Shape elem;
      bool isList = peek() == '[';
      if (isList) {
        auto sub = parseTensorList(depth + 1, values);
        if (!sub) return std::nullopt;
        elem = std::move(*sub);
      } else {
        size_t end = pos_;
        while (end < text_.size() && !isLabelSpace(text_[end]) && text_[end] != ',' && text_[end] != ']' &&
               text_[end] != '[')
          ++end;
        std::string_view tok = text_.substr(pos_, end - pos_);
        if (tok.empty()) {
          error(pos_, "expected a number or '[' in tensor literal, got " + describe(pos_));
          return std::nullopt;
        }
        std::string err;
        auto n = looksNumeric(tok) ? parseNumber(tok, err) : std::nullopt;
        if (!n) {
          error(pos_, err.empty() ? "expected a number in tensor literal, got " + text::quoteToken(tok) : err);
          return std::nullopt;
        }
        values.push_back(n->d);
        pos_ = end;
      }
      ++count;
      if (!first) {
        first = elem;
        firstIsList = isList;
      } else if (isList != firstIsList) {
        error(elemPos, "tensor literal mixes numbers and lists");
        return std::nullopt;
      } else if (elem != *first) {
        std::string msg = "ragged tensor literal: row " + std::to_string(count) + " has ";
        if (elem[0] != (*first)[0])
          msg += std::to_string(elem[0]) + " elements, expected " + std::to_string((*first)[0]);
        else
          msg += "shape " + shapeString(elem) + ", expected " + shapeString(*first);
        error(elemPos, msg);
        return std::nullopt;
      }
      skipSpaces();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == ']') {
        ++pos_;
        break;
      }
      if (atEnd()) {
        error(pos_, "expected ']' to close tensor literal, got end of label");
        note(loc(open), "to match this '['");
      } else {
        error(pos_, "expected ',' or ']' in tensor literal, got " + describe(pos_));
      }
      return std::nullopt;
    }
    Shape shape{count};
    shape.insert(shape.end(), first->begin(), first->end());
    return shape;
  }

  std::string_view text_;
  Location base_;
  DiagnosticEngine& diags_;
  std::vector<size_t> lineStarts_;  // offsets just after each '\n' in text_
  size_t pos_ = 0;
  int errors_ = 0;
  bool fatal_ = false;  // the error leaves no safe place to resume (tensor, quote)
  ParsedLabel label_;
  std::unordered_map<std::string, size_t> keys_;  // key -> index in label_.args
};

}  // namespace

std::optional<ParsedLabel> parseLabel(std::string_view text, Location loc, DiagnosticEngine& diags) {
  LabelParser parser(text, std::move(loc), diags);
  return parser.run();
}

}  // namespace shoal::mermaid
