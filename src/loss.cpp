#include "backprop/loss.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "kernels/kernels.hpp"

namespace backprop {

std::string_view to_string(Loss l) {
  switch (l) {
    case Loss::kQuadratic:
      return "quadratic";
    case Loss::kCrossEntropy:
      return "cross-entropy";
  }
  return "?";
}

Loss parse_loss(std::string_view name) {
  if (name == "quadratic") return Loss::kQuadratic;
  if (name == "cross-entropy") return Loss::kCrossEntropy;
  throw Error(ErrorCode::kUsage,
              "unknown loss '" + std::string(name) + "': expected quadratic or cross-entropy");
}

bool is_valid_output_loss(Activation output, Loss loss) {
  if (!is_output_activation(output)) return false;
  return loss == Loss::kQuadratic || output != Activation::kIdentity;
}

template <class T>
double loss_forward(Activation output, Loss loss, ConstMatrixViewT<T> z, ConstMatrixViewT<T> a,
                    ConstMatrixViewT<T> y) noexcept {
  BACKPROP_DASSERT(is_valid_output_loss(output, loss));
  double total = 0;
  const Index k = y.cols;
  for (Index i = 0; i < y.rows; ++i) {
    const T* zi = z.row(i);
    const T* ai = a.row(i);
    const T* yi = y.row(i);
    double l = 0;
    if (loss == Loss::kQuadratic) {
      for (Index j = 0; j < k; ++j) {
        double d = static_cast<double>(ai[j]) - static_cast<double>(yi[j]);
        l += 0.5 * d * d;
      }
    } else if (output == Activation::kSoftmax) {
      double m = zi[0];
      for (Index j = 1; j < k; ++j) m = std::max(m, static_cast<double>(zi[j]));
      double s = 0;
      for (Index j = 0; j < k; ++j) s += std::exp(static_cast<double>(zi[j]) - m);
      double lse = m + std::log(s);
      for (Index j = 0; j < k; ++j) l += static_cast<double>(yi[j]) * (lse - zi[j]);
    } else {  // sigmoid + binary cross-entropy, from the logits
      for (Index j = 0; j < k; ++j) {
        double zj = zi[j];
        l += std::max(zj, 0.0) - zj * static_cast<double>(yi[j]) +
             std::log1p(std::exp(-std::abs(zj)));
      }
    }
    total += l;
  }
  return y.rows > 0 ? total / static_cast<double>(y.rows) : 0.0;
}

template <class T>
void loss_backward(Activation output, Loss loss, ConstMatrixViewT<T> a, ConstMatrixViewT<T> y,
                   MatrixViewT<T> dz, Index average_over) noexcept {
  BACKPROP_DASSERT(is_valid_output_loss(output, loss));
  const Index k = y.cols;
  const T inv_b = T(1) / static_cast<T>(average_over > 0 ? average_over : y.rows);
  // Row by row, each row by one thread (D4b's dot product stays within its row).
  kernels::parallel_ranges(y.rows, static_cast<double>(k) * 3, 1, [&](Index begin, Index end) {
    for (Index i = begin; i < end; ++i) {
      const T* ai = a.row(i);
      const T* yi = y.row(i);
      T* di = dz.row(i);
      if (loss == Loss::kQuadratic) {
        switch (output) {
          case Activation::kSigmoid:  // D4a
            for (Index j = 0; j < k; ++j)
              di[j] = (ai[j] - yi[j]) * (ai[j] * (T(1) - ai[j])) * inv_b;
            break;
          case Activation::kSoftmax: {  // D4b: the full Jacobian ∂a_k/∂z_j = a_k(δ_kj − a_j)
            T dot = 0;
            for (Index j = 0; j < k; ++j) dot += (ai[j] - yi[j]) * ai[j];
            for (Index j = 0; j < k; ++j) di[j] = ai[j] * ((ai[j] - yi[j]) - dot) * inv_b;
            break;
          }
          default:  // D4c: identity
            for (Index j = 0; j < k; ++j) di[j] = (ai[j] - yi[j]) * inv_b;
            break;
        }
      } else if (output == Activation::kSoftmax) {  // D4d
        T ysum = 0;
        for (Index j = 0; j < k; ++j) ysum += yi[j];
        for (Index j = 0; j < k; ++j) di[j] = (ai[j] * ysum - yi[j]) * inv_b;
      } else {  // D4e: sigmoid + binary cross-entropy
        for (Index j = 0; j < k; ++j) di[j] = (ai[j] - yi[j]) * inv_b;
      }
    }
  });
}

template double loss_forward<float>(Activation, Loss, ConstMatrixView, ConstMatrixView,
                                    ConstMatrixView) noexcept;
template double loss_forward<double>(Activation, Loss, ConstMatrixViewT<double>,
                                     ConstMatrixViewT<double>, ConstMatrixViewT<double>) noexcept;
template void loss_backward<float>(Activation, Loss, ConstMatrixView, ConstMatrixView, MatrixView,
                                   Index) noexcept;
template void loss_backward<double>(Activation, Loss, ConstMatrixViewT<double>,
                                    ConstMatrixViewT<double>, MatrixViewT<double>, Index) noexcept;

}  // namespace backprop
