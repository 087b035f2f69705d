#include "backprop/dense.hpp"

#include "kernels/kernels.hpp"

namespace backprop {

template <class T>
void dense_forward(ConstMatrixViewT<T> x, DenseParamsT<T> p, Activation g, T slope,
                   MatrixViewT<T> z, MatrixViewT<T> a) noexcept {
  kernels::gemm_forward<T>(x, p.w, p.b, z);  // D1
  activation_forward<T>(g, z, a, slope);     // D2
}

template <class T>
void dense_backward(ConstMatrixViewT<T> x, DenseParamsT<T> p, ConstMatrixViewT<T> dz,
                    DenseGradsT<T> g, MatrixViewT<T> dx) noexcept {
  kernels::gemm_backward_weights<T>(dz, x, g.dw);  // D6
  // D7: column sums, rows in order, so the sum does not depend on how the batch was computed.
  for (Index i = 0; i < dz.rows; ++i) {
    const T* di = dz.row(i);
    for (Index j = 0; j < dz.cols; ++j) g.db[j] += di[j];
  }
  if (!dx.empty()) kernels::gemm_backward_data<T>(dz, p.w, dx);  // D5
}

template void dense_forward<float>(ConstMatrixView, DenseParamsT<float>, Activation, float,
                                   MatrixView, MatrixView) noexcept;
template void dense_forward<double>(ConstMatrixViewT<double>, DenseParamsT<double>, Activation,
                                    double, MatrixViewT<double>, MatrixViewT<double>) noexcept;
template void dense_backward<float>(ConstMatrixView, DenseParamsT<float>, ConstMatrixView,
                                    DenseGradsT<float>, MatrixView) noexcept;
template void dense_backward<double>(ConstMatrixViewT<double>, DenseParamsT<double>,
                                     ConstMatrixViewT<double>, DenseGradsT<double>,
                                     MatrixViewT<double>) noexcept;

}  // namespace backprop
