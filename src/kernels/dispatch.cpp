// The one place that knows the list of kernel tables and picks one for this CPU.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "kernels/kernels.hpp"

namespace backprop::kernels {

namespace {

bool cpu_has_avx2() {
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

bool cpu_has_avx512() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw") && cpu_has_avx2();
}

const KernelTable* choose() {
  std::vector<const KernelTable*> tables = available();
  const KernelTable* best = tables.back();
  const char* want = std::getenv("BACKPROP_ISA");
  if (want == nullptr || *want == '\0') return best;
  if (const KernelTable* t = find(want)) return t;
  std::fprintf(stderr,
               "backprop: warning: BACKPROP_ISA=%s is not a kernel table this CPU runs "
               "(scalar, avx2, avx512); using %s\n",
               want, best->name);
  return best;
}

}  // namespace

std::vector<const KernelTable*> available() {
  std::vector<const KernelTable*> out = {&scalar_table()};
  if (cpu_has_avx2()) out.push_back(&avx2_table());
  if (cpu_has_avx512()) out.push_back(&avx512_table());
  return out;
}

const KernelTable* find(std::string_view name) {
  for (const KernelTable* t : available()) {
    if (name == t->name) return t;
  }
  return nullptr;
}

namespace {
const KernelTable*& active_slot() {
  static const KernelTable* table = choose();
  return table;
}
}  // namespace

const KernelTable& active() {
  return *active_slot();
}

void set_active(const KernelTable& t) {
  active_slot() = &t;
}

}  // namespace backprop::kernels
