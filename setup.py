"""lit_keras: LiT (Locked-image Tuning) for TensorFlow / tf_keras."""
import setuptools

# The verified stack (see README "Stack"): tf-models-official 2.20 pins tensorflow~=2.20.0, and
# tensorflow-model-optimization (pulled by tfm) wants absl-py~=1.2.
INSTALL_REQUIRES = [
    "tensorflow==2.20.0",
    "tf-keras==2.20.1",
    "tensorflow-text==2.20.1",
    "tensorflow-hub==0.16.1",
    "tf-models-official==2.20.0",
    "absl-py>=1.4,<2",
    "ml_collections",
    "numpy",
    "pillow",
    "safetensors",
    "scikit-learn",
    "tqdm",
]

EXTRAS_REQUIRE = {
    # TFDS datasets as sources (`tfds:NAME:SPLIT`); importlib_resources: TFDS's dataset builders.
    "tfds": [
        "tensorflow-datasets>=4.9",
        "importlib_resources",
    ],
    # The converter as an Apache Beam pipeline (`lit-keras-convert --beam`).
    "beam": [
        "apache-beam>=2.60",
    ],
    "test": [
        "pytest",
        "scikit-image",
    ],
}

setuptools.setup(
    name="lit_keras",
    version="0.1.0",
    description="LiT: Locked-image text Tuning for TensorFlow / tf_keras",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=setuptools.find_packages(include=["lit_keras", "lit_keras.*", "lit_keras_app",
                                               "lit_keras_app.*"]),
    package_data={"lit_keras": ["assets/*.txt"]},
    entry_points={"console_scripts": [
        "lit-keras-build-towers=lit_keras_app.cli.build_towers:main",
        "lit-keras-convert=lit_keras_app.cli.convert:main",
        "lit-keras-validate=lit_keras_app.cli.validate:main",
        "lit-keras-build-data=lit_keras_app.cli.build_data:main",
        "lit-keras-precompute=lit_keras_app.cli.precompute:main",
        "lit-keras-export=lit_keras_app.cli.export:main",
    ]},
    python_requires=">=3.10",
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    license="Apache-2.0",
)
