"""Few-shot linear probes: closed-form L2-regularised least squares (big_vision's `fewshot_lsr`).

For each seed and each number of shots k, k training images of every class are drawn (seed s:
`np.random.default_rng(s)` permutes each class's indices, the first k are taken), a linear
classifier is fitted in closed form to their representations and evaluated on the test set:

- the features are whitened with the k-shot set's mean and standard deviation (+1e-5), and a
  constant 100 column is appended (a bias that the L2 penalty barely touches);
- targets are the one-hot labels scaled to {−1, +1};
- w = (xᵀx + λI)⁻¹ xᵀy, computed through the eigendecomposition of xᵀx (or of xxᵀ, when there
  are fewer points than dimensions, as x ᵀ(xxᵀ + λI)⁻¹ y: the same w);
- accuracy = mean(argmax(x_test w) == y_test).

Computed on the host in float64 with NumPy (a few thousand points at most: cheap).
"""
import numpy as np

BIAS_CONSTANT = 100.0


def lsr_classifier(x, y, num_classes, l2_reg):
  """Fits the probe on (x [n, d], y [n] int); returns `predict(x_test) -> labels` (its
  `weights` attribute: w [d + 1, num_classes], the bias row last)."""
  x = np.asarray(x, np.float64)
  mean = x.mean(0, keepdims=True)
  std = x.std(0, keepdims=True) + 1e-5
  xw = np.pad((x - mean) / std, ((0, 0), (0, 1)), constant_values=BIAS_CONSTANT)
  targets = 2.0 * np.eye(num_classes)[np.asarray(y)] - 1.0
  if len(xw) >= xw.shape[1]:
    eigs, q = np.linalg.eigh(xw.T @ xw)
    lhs, rhs = q, q.T @ (xw.T @ targets)
  else:
    eigs, q = np.linalg.eigh(xw @ xw.T)
    lhs, rhs = xw.T @ q, q.T @ targets
  w = (lhs / (eigs + l2_reg)[None, :]) @ rhs

  def predict(x_test):
    xt = (np.asarray(x_test, np.float64) - mean) / std
    xt = np.pad(xt, ((0, 0), (0, 1)), constant_values=BIAS_CONSTANT)
    return np.argmax(xt @ w, axis=1)

  predict.weights = w
  return predict


def fewshot_accuracy(train_repr, train_labels, test_repr, test_labels, shots, seeds, l2_reg,
                     num_classes=None):
  """{shots: [accuracy per seed]} of the probe on `shots` examples per class.

  A class with fewer than `shots` training examples contributes all it has. Examples labelled
  −1 (unlabelled) are ignored on both sides.
  """
  train_labels, test_labels = np.asarray(train_labels), np.asarray(test_labels)
  train_repr, test_repr = np.asarray(train_repr), np.asarray(test_repr)
  keep, keep_test = train_labels >= 0, test_labels >= 0
  train_repr, train_labels = train_repr[keep], train_labels[keep]
  test_repr, test_labels = test_repr[keep_test], test_labels[keep_test]
  if not len(train_labels) or not len(test_labels):
    raise ValueError("few-shot probe: the train and test sets need labelled examples")
  num_classes = int(num_classes or max(train_labels.max(), test_labels.max()) + 1)
  out = {int(k): [] for k in shots}
  for seed in range(int(seeds)):
    rng = np.random.default_rng(seed)
    by_class = [rng.permutation(np.where(train_labels == c)[0]) for c in range(num_classes)]
    for k in shots:
      idx = np.concatenate([ix[:k] for ix in by_class])
      predict = lsr_classifier(train_repr[idx], train_labels[idx], num_classes, l2_reg)
      out[int(k)].append(float(np.mean(predict(test_repr) == test_labels)))
  return out
