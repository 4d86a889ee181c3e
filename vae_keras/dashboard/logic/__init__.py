"""What the dashboard computes, testable without Streamlit (``vae_keras.dashboard`` renders it).

One module per concern, all re-exported here:

- :mod:`.cards`: the models folder and the model cards (listing lines, headline figures, tables);
- :mod:`.pictures`: a model's test images, validated uploads, per-image errors and PNG grids;
- :mod:`.latent`: the 2-D view of the latent space (PCA), manifold grids, traversals, interpolations;
- :mod:`.charts`: training histories and the altair charts;
- :mod:`.numbers`: numbers for display (compact, with thousands separators);
- :mod:`.links`: the address bar's model and page (links, Back/Forward).
- :mod:`.units`: which latent dims are used (per-dim KL and activity, the active-units rule) and their chart;
- :mod:`.scatter`: the latent scatter with image tooltips and the manifold's region;
- :mod:`.quality`: the card's sample-quality figures and how often samples are recognised as their class;
- :mod:`.gallery`: image grids as HTML with inline images, and the PNG/CSV files offered for download.

Nothing here imports Streamlit or, at import, TensorFlow (test images and uploads import
`vae_keras.data` when they are decoded; altair and pandas are imported by the builders that need them).
"""

from vae_keras.dashboard.logic.cards import (  # noqa: F401
    COMPARE_METRICS,
    MODELS_DIR_ENV,
    TRAIN_COMMAND,
    bits_per_dim,
    card_summary,
    class_names,
    comparison_table,
    condition_labels,
    default_traversal_dims,
    describe_entry,
    final_figures,
    kl_per_dim,
    metric,
    metrics_json,
    model_stamp,
    models_table,
    nll_words,
    over_test_images,
    resolve_models_dir,
    sampler_words,
    short_dataset,
    short_reason,
    train_command,
)
from vae_keras.dashboard.logic.charts import (  # noqa: F401
    HISTORY_METRICS,
    METRIC_TITLES,
    PALETTE,
    SPLIT_NAMES,
    UNITS,
    history_long,
    kl_chart,
    kl_weight_chart,
    latent_chart,
    loss_chart,
    model_colors,
    pan_only,
    per_dimension,
    warmup_note,
)
from vae_keras.dashboard.logic.gallery import (  # noqa: F401
    csv_bytes,
    data_uri,
    errors_frame,
    grid_download_png,
    grid_html,
    png_size,
    tile_pngs,
    z_mean_frame,
)
from vae_keras.dashboard.logic.latent import (  # noqa: F401
    interpolate,
    latent_frame,
    latent_traversal,
    manifold_z,
    normal_quantiles,
    pca_2d,
)
from vae_keras.dashboard.logic.links import resolve_link  # noqa: F401
from vae_keras.dashboard.logic.numbers import compact_number, exact_number  # noqa: F401
from vae_keras.dashboard.logic.pictures import (  # noqa: F401
    MAX_TEST_IMAGES,
    MAX_UPLOAD_BYTES,
    MAX_UPLOAD_MB,
    MAX_UPLOAD_PIXELS,
    TestSet,
    UploadError,
    decode_upload,
    decode_uploads,
    display_scale,
    error_name,
    grid_png,
    load_test_set,
    pair_pngs,
    pick_indices,
    rank_indices,
    reconstruction_error,
    rows_png,
    upscale,
)
from vae_keras.dashboard.logic.quality import SAMPLE_QUALITY, recognition_table, sample_quality_figures  # noqa: F401
from vae_keras.dashboard.logic.scatter import latent_scatter, manifold_region, thumbnails  # noqa: F401
from vae_keras.dashboard.logic.units import (  # noqa: F401
    UNIT_SORTS,
    active_units_sentence,
    card_activity,
    no_kl_per_dim_reason,
    sort_order,
    unit_table,
    units_charts,
)
from vae_keras.errors import DataError  # noqa: F401 - the base of UploadError, raised by load_test_set
