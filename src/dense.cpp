#include "backprop/dense.hpp"

#include <algorithm>

#include "kernels/kernels.hpp"

namespace backprop {

template <class T>
void dense_forward(ConstMatrixViewT<T> x, DenseParamsT<T> p, Activation g, T slope,
                   MatrixViewT<T> z, MatrixViewT<T> a) noexcept {
  if (z.data == a.data && g != Activation::kSoftmax) {
    kernels::gemm_forward<T>(x, p.w, p.b, g, slope, a);  // D1 and D2 in one pass
    return;
  }
  kernels::gemm_forward<T>(x, p.w, p.b, Activation::kIdentity, slope, z);  // D1
  kernels::activation_forward_rows<T>(g, slope, z, a);                     // D2 (softmax: per row)
}

template <class T>
void dense_backward(ConstMatrixViewT<T> x, DenseParamsT<T> p, ConstMatrixViewT<T> dz,
                    DenseGradsT<T> g, Activation g_x, T slope, MatrixViewT<T> dz_x,
                    bool accumulate) noexcept {
  kernels::gemm_backward_weights<T>(dz, x, g.dw, accumulate);  // D6
  // D7: column sums, rows in order, so the sum does not depend on how the batch was computed.
  if (!accumulate) std::fill(g.db, g.db + dz.cols, T(0));
  for (Index i = 0; i < dz.rows; ++i) {
    const T* di = dz.row(i);
    for (Index j = 0; j < dz.cols; ++j) g.db[j] += di[j];
  }
  if (!dz_x.empty()) kernels::gemm_backward_data<T>(dz, p.w, g_x, slope, x, dz_x);  // D5
}

template void dense_forward<float>(ConstMatrixView, DenseParamsT<float>, Activation, float,
                                   MatrixView, MatrixView) noexcept;
template void dense_forward<double>(ConstMatrixViewT<double>, DenseParamsT<double>, Activation,
                                    double, MatrixViewT<double>, MatrixViewT<double>) noexcept;
template void dense_backward<float>(ConstMatrixView, DenseParamsT<float>, ConstMatrixView,
                                    DenseGradsT<float>, Activation, float, MatrixView,
                                    bool) noexcept;
template void dense_backward<double>(ConstMatrixViewT<double>, DenseParamsT<double>,
                                     ConstMatrixViewT<double>, DenseGradsT<double>, Activation,
                                     double, MatrixViewT<double>, bool) noexcept;

}  // namespace backprop
