// Per-op test cases, registered by op (as gradients are registered in passes/) instead of
// listed in a switch over every op: each op family's test file registers the cases of its
// ops, and coverage tests (one per registry) check that every op has its cases. A new op's
// tests then live beside its kernels' tests and nothing else in tests/ changes.
//
//   SHOAL_OP_CASES(CudaCaseRegistry, Relu, OpKind::Relu, OpKind::Sigmoid) { ... }
//
// registers one function body for the listed ops; the body sees the registry's parameters.
#pragma once

#include <array>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <cstddef>
#include <initializer_list>

#include "ir/ops.h"

namespace shoal::test {

/// One registry of per-op case functions of type Fn (a function type). Tag keeps registries
/// with the same signature apart.
template <typename Tag, typename Fn>
class OpCaseRegistry {
 public:
  using Function = Fn;
  /// The function registered for `kind`, or null.
  static Fn* find(OpKind kind) { return table()[size_t(kind)]; }
  /// Registers `fn` for every op in `kinds` (at static initialization).
  struct Registration {
    Registration(std::initializer_list<OpKind> kinds, Fn* fn) {
      for (OpKind k : kinds) {
        if (table()[size_t(k)]) {  // two files register the same op: one would silently win
          std::fprintf(stderr, "test registry: op '%s' registered twice\n", std::string(opName(k)).c_str());
          std::abort();
        }
        table()[size_t(k)] = fn;
      }
    }
  };

 private:
  static std::array<Fn*, kNumOps>& table() {
    static std::array<Fn*, kNumOps> t{};
    return t;
  }
};

/// Registers the function `fn` as `Registry`'s cases for the ops listed after it. Each
/// registry's SHOAL_..._CASES macro names its functions with its own prefix and the case's id
/// (shoalShapeCases_Relu, shoalGradCases_Relu, ...): the test sources are compiled several to a
/// translation unit (tests/CMakeLists.txt, SHOAL_TESTS_UNITY_BATCH), where two registries' cases
/// of one op meet.
#define SHOAL_OP_CASES_REGISTER(Registry, fn, ...) \
  static const Registry::Registration fn##_registration({__VA_ARGS__}, &fn)

}  // namespace shoal::test
