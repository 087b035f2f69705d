// Matrices: an owning, 64-byte-aligned, row-major matrix and non-owning views over any row-major
// storage with a row stride. Written once for float (training) and double (the reference path
// that gradcheck uses). Views are cheap values; pass them by value.
//
//   Matrix m(3, 4);                  // 3×4 floats, zero-filled, rows 64-byte aligned at row 0
//   MatrixView v = m.view();         // mutable view; ConstMatrixView for read-only
//   v(1, 2) = 5.0f;                  // element (row 1, column 2)
//   MatrixView top = v.rows_range(0, 2);
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <type_traits>

#include "backprop/error.hpp"

namespace backprop {

using Index = std::ptrdiff_t;

// A view of rows×cols elements; element (i, j) lives at data[i * stride + j].
template <class T>
struct MatrixViewT {
  T* data = nullptr;
  Index rows = 0;
  Index cols = 0;
  Index stride = 0;  // elements between the starts of consecutive rows, >= cols

  MatrixViewT() = default;
  MatrixViewT(T* d, Index r, Index c) : data(d), rows(r), cols(c), stride(c) {}
  MatrixViewT(T* d, Index r, Index c, Index s) : data(d), rows(r), cols(c), stride(s) {}
  // A mutable view converts to a const one.
  template <class U, class = std::enable_if_t<std::is_same_v<T, const U>>>
  MatrixViewT(MatrixViewT<U> o) : data(o.data), rows(o.rows), cols(o.cols), stride(o.stride) {}

  T& operator()(Index i, Index j) const {
    BACKPROP_DASSERT(i >= 0 && i < rows && j >= 0 && j < cols);
    return data[i * stride + j];
  }
  T* row(Index i) const { return data + i * stride; }
  Index size() const { return rows * cols; }
  bool empty() const { return rows == 0 || cols == 0; }
  // Rows [begin, end).
  MatrixViewT rows_range(Index begin, Index end) const {
    BACKPROP_ASSERT(0 <= begin && begin <= end && end <= rows);
    return MatrixViewT(data + begin * stride, end - begin, cols, stride);
  }
};

template <class T>
using ConstMatrixViewT = MatrixViewT<const T>;
using MatrixView = MatrixViewT<float>;
using ConstMatrixView = MatrixViewT<const float>;

namespace detail {
struct AlignedFree {
  void operator()(void* p) const noexcept;
};
// Zero-filled storage for n elements of `element_size` bytes, 64-byte aligned. Throws
// Error(kLimit) when n * element_size overflows or exceeds what the process can allocate.
void* aligned_zero_alloc(Index n, std::size_t element_size);
}  // namespace detail

// Owning row-major matrix, stride == cols, storage 64-byte aligned and zero-initialised.
template <class T>
class BasicMatrix {
 public:
  BasicMatrix() = default;
  BasicMatrix(Index rows, Index cols) { resize(rows, cols); }
  // Row-major literal: BasicMatrix<float>({{0, 1}, {1, 0}}).
  BasicMatrix(std::initializer_list<std::initializer_list<T>> rows_list);

  BasicMatrix(const BasicMatrix& o) : BasicMatrix(o.rows_, o.cols_) { copy_from(o.view()); }
  BasicMatrix& operator=(const BasicMatrix& o) {
    if (this != &o) {
      resize(o.rows_, o.cols_);
      copy_from(o.view());
    }
    return *this;
  }
  BasicMatrix(BasicMatrix&&) noexcept = default;
  BasicMatrix& operator=(BasicMatrix&&) noexcept = default;

  // Reshapes to rows×cols and zero-fills. Reuses the storage when it is large enough, so a
  // workspace that only ever shrinks or regrows to its high-water mark allocates once.
  void resize(Index rows, Index cols);

  Index rows() const { return rows_; }
  Index cols() const { return cols_; }
  Index size() const { return rows_ * cols_; }
  T* data() { return data_.get(); }
  const T* data() const { return data_.get(); }
  T& operator()(Index i, Index j) { return view()(i, j); }
  const T& operator()(Index i, Index j) const { return view()(i, j); }

  MatrixViewT<T> view() { return MatrixViewT<T>(data_.get(), rows_, cols_); }
  ConstMatrixViewT<T> view() const { return ConstMatrixViewT<T>(data_.get(), rows_, cols_); }
  operator MatrixViewT<T>() { return view(); }
  operator ConstMatrixViewT<T>() const { return view(); }

 private:
  void copy_from(ConstMatrixViewT<T> src);

  std::unique_ptr<T[], detail::AlignedFree> data_;
  Index rows_ = 0, cols_ = 0, capacity_ = 0;
};

using Matrix = BasicMatrix<float>;
using MatrixD = BasicMatrix<double>;

// dst = src, element by element (same shape).
template <class T>
void copy(ConstMatrixViewT<T> src, MatrixViewT<T> dst);

// Every element of `m` set to `value`.
template <class T>
void fill(MatrixViewT<T> m, T value);

extern template class BasicMatrix<float>;
extern template class BasicMatrix<double>;

}  // namespace backprop
