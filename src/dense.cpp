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
                    DenseGradsT<T> g, Activation g_x, T slope, MatrixViewT<T> dz_x, bool accumulate,
                    ConstMatrixViewT<T> x_act, ConstMatrixViewT<T> x_mask) noexcept {
  kernels::gemm_backward_weights<T>(dz, x, g.dw, accumulate);  // D6
  kernels::column_sums<T>(dz, g.db, accumulate);               // D7
  if (!dz_x.empty()) {                                         // D5
    kernels::gemm_backward_data<T>(dz, p.w, g_x, slope, x_act.empty() ? x : x_act, dz_x, x_mask);
  }
}

template void dense_forward<float>(ConstMatrixView, DenseParamsT<float>, Activation, float,
                                   MatrixView, MatrixView) noexcept;
template void dense_forward<double>(ConstMatrixViewT<double>, DenseParamsT<double>, Activation,
                                    double, MatrixViewT<double>, MatrixViewT<double>) noexcept;
template void dense_backward<float>(ConstMatrixView, DenseParamsT<float>, ConstMatrixView,
                                    DenseGradsT<float>, Activation, float, MatrixView, bool,
                                    ConstMatrixView, ConstMatrixView) noexcept;
template void dense_backward<double>(ConstMatrixViewT<double>, DenseParamsT<double>,
                                     ConstMatrixViewT<double>, DenseGradsT<double>, Activation,
                                     double, MatrixViewT<double>, bool, ConstMatrixViewT<double>,
                                     ConstMatrixViewT<double>) noexcept;

}  // namespace backprop
