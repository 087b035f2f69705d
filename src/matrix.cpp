#include "backprop/matrix.hpp"

#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "util/checked.hpp"

namespace backprop {

namespace detail {

void AlignedFree::operator()(void* p) const noexcept {
  std::free(p);
}

void* aligned_zero_alloc(Index n, std::size_t element_size) {
  constexpr std::size_t kAlign = 64;
  std::uint64_t bytes = 0;
  if (n < 0 || !checked_mul(static_cast<std::uint64_t>(n), element_size, bytes) ||
      bytes > (std::uint64_t{1} << 46)) {
    throw Error(ErrorCode::kLimit, "matrix of " + std::to_string(n) + " elements of " +
                                       std::to_string(element_size) + " bytes is too large");
  }
  // aligned_alloc wants a multiple of the alignment, and a non-zero size for a usable pointer.
  std::size_t rounded = (static_cast<std::size_t>(bytes) + kAlign - 1) / kAlign * kAlign;
  if (rounded == 0) rounded = kAlign;
  void* p = std::aligned_alloc(kAlign, rounded);
  if (p == nullptr) {
    throw Error(ErrorCode::kLimit,
                "out of memory allocating " + std::to_string(rounded) + " bytes for a matrix");
  }
  std::memset(p, 0, rounded);
  return p;
}

}  // namespace detail

template <class T>
BasicMatrix<T>::BasicMatrix(std::initializer_list<std::initializer_list<T>> rows_list) {
  Index r = static_cast<Index>(rows_list.size());
  Index c = r == 0 ? 0 : static_cast<Index>(rows_list.begin()->size());
  for (const auto& row : rows_list) {
    if (static_cast<Index>(row.size()) != c) {
      throw Error(ErrorCode::kUsage, "matrix literal: every row needs " + std::to_string(c) +
                                         " values, a row has " + std::to_string(row.size()));
    }
  }
  resize(r, c);
  Index i = 0;
  for (const auto& row : rows_list) {
    Index j = 0;
    for (T v : row) (*this)(i, j++) = v;
    ++i;
  }
}

template <class T>
void BasicMatrix<T>::resize(Index rows, Index cols) {
  BACKPROP_ASSERT(rows >= 0 && cols >= 0);
  std::uint64_t n = 0;
  if (!detail::checked_mul(static_cast<std::uint64_t>(rows), static_cast<std::uint64_t>(cols), n) ||
      n > static_cast<std::uint64_t>(PTRDIFF_MAX / static_cast<Index>(sizeof(T)))) {
    throw Error(ErrorCode::kLimit, "matrix of " + std::to_string(rows) + "x" +
                                       std::to_string(cols) + " elements is too large");
  }
  Index need = static_cast<Index>(n);
  if (need > capacity_ || !data_) {
    data_.reset(static_cast<T*>(detail::aligned_zero_alloc(need, sizeof(T))));
    capacity_ = need;
  } else {
    std::memset(data_.get(), 0, static_cast<std::size_t>(need) * sizeof(T));
  }
  rows_ = rows;
  cols_ = cols;
}

template <class T>
void BasicMatrix<T>::copy_from(ConstMatrixViewT<T> src) {
  copy<T>(src, view());
}

template <class T>
void copy(ConstMatrixViewT<T> src, MatrixViewT<T> dst) {
  BACKPROP_ASSERT(src.rows == dst.rows && src.cols == dst.cols);
  for (Index i = 0; i < src.rows; ++i) {
    if (src.cols > 0) {
      std::memcpy(dst.row(i), src.row(i), static_cast<std::size_t>(src.cols) * sizeof(T));
    }
  }
}

template <class T>
void fill(MatrixViewT<T> m, T value) {
  for (Index i = 0; i < m.rows; ++i) {
    T* r = m.row(i);
    for (Index j = 0; j < m.cols; ++j) r[j] = value;
  }
}

template class BasicMatrix<float>;
template class BasicMatrix<double>;
template void copy<float>(ConstMatrixView, MatrixView);
template void copy<double>(ConstMatrixViewT<double>, MatrixViewT<double>);
template void fill<float>(MatrixView, float);
template void fill<double>(MatrixViewT<double>, double);

}  // namespace backprop
