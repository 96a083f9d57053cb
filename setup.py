# Copyright (c) OpenMMLab. All rights reserved.
"""Packaging for mdqe_mm: pure Python, imports no torch.

Configs, tools and ``model-index.yml`` are exposed as ``mdqe_mm/.mim/`` so
``mim train mdqe_mm CONFIG`` finds them: symlinked for an editable install
(``develop`` or PEP 660 ``editable_wheel``), copied for a wheel or sdist.
"""
import os
import os.path as osp
import shutil
import sys
import warnings

from setuptools import find_packages, setup

PACKAGE = 'mdqe_mm'
MIM_FILES = ('configs', 'tools', 'model-index.yml')


def readme() -> str:
    with open('README.md', encoding='utf-8') as f:
        return f.read()


def get_version() -> str:
    scope = {}
    with open(osp.join(PACKAGE, 'version.py'), encoding='utf-8') as f:
        exec(compile(f.read(), 'version.py', 'exec'), scope)
    return scope['__version__']


def parse_requirements(fname: str) -> list:
    """Read one ``requirements/*.txt`` file, following ``-r`` includes."""
    requirements = []
    with open(fname, encoding='utf-8') as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if not line:
                continue
            if line.startswith('-r '):
                requirements += parse_requirements(
                    osp.join(osp.dirname(fname), line[3:].strip()))
            else:
                requirements.append(line)
    return requirements


def add_mim_extension() -> None:
    """Expose configs/tools under ``mdqe_mm/.mim`` for OpenMIM.

    pip>=21.3 installs editable packages through PEP 660, which runs the
    ``editable_wheel`` command instead of ``develop``; both mean "link".
    """
    if 'develop' in sys.argv or 'editable_wheel' in sys.argv:
        mode = 'symlink' if os.name != 'nt' else 'copy'
    elif any(cmd in sys.argv for cmd in ('sdist', 'bdist_wheel', 'build')):
        mode = 'copy'
    else:
        return

    repo_root = osp.dirname(osp.abspath(__file__))
    mim_root = osp.join(repo_root, PACKAGE, '.mim')
    os.makedirs(mim_root, exist_ok=True)
    for name in MIM_FILES:
        src = osp.join(repo_root, name)
        dst = osp.join(mim_root, name)
        if not osp.exists(src):
            continue
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        if mode == 'symlink':
            os.symlink(osp.relpath(src, mim_root), dst)
        elif osp.isdir(src):
            shutil.copytree(src, dst)
        else:
            shutil.copyfile(src, dst)
    if mode == 'symlink' and os.name == 'nt':  # pragma: no cover
        warnings.warn('symlinks unavailable: .mim holds copies')


if __name__ == '__main__':
    add_mim_extension()
    setup(
        name=PACKAGE,
        version=get_version(),
        description='MDQE video instance segmentation for MMDetection 3.x',
        long_description=readme(),
        long_description_content_type='text/markdown',
        keywords='video instance segmentation, MDQE, OVIS, YouTube-VIS',
        packages=find_packages(exclude=('configs', 'tools', 'tests',
                                        'benchmarks', 'docs')),
        include_package_data=True,
        python_requires='>=3.8',
        license='Apache License 2.0',
        classifiers=[
            'License :: OSI Approved :: Apache Software License',
            'Operating System :: POSIX :: Linux',
            'Programming Language :: Python :: 3',
            'Topic :: Scientific/Engineering :: Artificial Intelligence',
        ],
        install_requires=parse_requirements('requirements/runtime.txt'),
        extras_require={
            'all': parse_requirements('requirements.txt'),
            'tests': parse_requirements('requirements/tests.txt'),
            'build': parse_requirements('requirements/build.txt'),
            'optional': parse_requirements('requirements/optional.txt'),
            'mim': parse_requirements('requirements/mminstall.txt'),
        },
        zip_safe=False)
