"""Pictures of a run: learning curves, confusion matrix, filters, feature maps, HTML report.

Modules, one concept each (matplotlib is imported lazily, inside the functions):

- ``figure``: a matplotlib ``Figure`` on the Agg canvas (no display, no global pyplot state);
- ``curves``: loss, accuracy and learning rate per epoch, best epoch marked;
- ``confusion``: confusion-matrix heatmap and per-class accuracy bars;
- ``images``: misclassified test images, first-layer filters, feature maps (from
  ``cnnlab.models.probe``, which runs a model layer by layer);
- ``projection``: PCA (NumPy) and t-SNE (scikit-learn) of penultimate-layer features;
- ``activations``: the lecture's six activation functions and their derivatives;
- ``gradcam``: Grad-CAM and saliency maps (``grad_cam``, ``saliency``), NumPy only;
- ``resize``: bilinear upsampling of heatmaps (PyTorch's ``align_corners=False``);
- ``cam_plots``: heatmaps laid over images (``show --cam``, the report's Grad-CAM section);
- ``run_plots``: every plot of a run folder (``plot_run``);
- ``report``: one self-contained ``report.html`` per run (``write_report``).
"""

from cnnlab.viz.gradcam import grad_cam, saliency

__all__ = ["grad_cam", "saliency"]
