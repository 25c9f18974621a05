// What a CPU kernel of one node sees: the node, its attributes, and its operands and results
// in the planned memory. The interpreter's dispatch (NodeRunner::run) hands one to each op
// family's runner, `template <typename T> Expected<void> runXxx(cpu::OpContext& c)`, declared in
// runtime/cpu/ops_<family>.h.
#pragma once

#include <fmt/format.h>

#include <string>

#include "ir/graph.h"
#include "runtime/cpu/interpreter.h"

namespace shoal::cpu {

class OpContext {
 public:
  OpContext(CpuExecutable& exe, const Node& n) : exe_(exe), n_(n) {}

  const Node& node() const { return n_; }
  const Attrs& attrs() const { return n_.attrs(); }
  /// Result `i`'s buffer, as T.
  template <typename T>
  T* out(size_t i = 0) {
    return static_cast<T*>(exe_.valueView(n_.result(i)).raw());
  }
  /// Operand `i`'s buffer, as T (read-only).
  template <typename T>
  const T* in(size_t i) {
    return static_cast<const T*>(exe_.valueView(n_.input(i)).raw());
  }
  /// Operand `i`'s buffer for an op that writes it in place (a `mutates` trait).
  template <typename T>
  T* inPlace(size_t i) {
    return static_cast<T*>(exe_.valueView(n_.input(i)).raw());
  }
  /// Any value's buffer as a typed tensor view.
  Tensor view(const Value* v) { return exe_.valueView(v); }
  const Shape& inShape(size_t i) const { return n_.input(i)->type().shape; }
  const Shape& outShape(size_t i = 0) const { return n_.result(i)->type().shape; }
  int64_t outCount(size_t i = 0) const { return n_.result(i)->type().numElements(); }
  size_t numInputs() const { return n_.numInputs(); }
  /// The executable's communicator (data-parallel runs), or null.
  Communicator* communicator() const { return exe_.communicator(); }
  /// An error a user can cause (bad data), worded like the op's other errors: "<op 'id'>: msg".
  Unexpected<Error> error(const std::string& msg) const { return shoal::fail(n_.describe() + ": " + msg, n_.loc()); }

 private:
  CpuExecutable& exe_;
  const Node& n_;
};

}  // namespace shoal::cpu
