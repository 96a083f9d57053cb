# Copyright (c) OpenMMLab. All rights reserved.
"""Helpers shared by the package, the tools and the benchmarks: safe output
files, checkpoint load checks, config key checks, frame size checks and a
quiet weight initialisation."""
from .checkpoint_check import (CheckpointLoadCheckHook, CheckpointLoadError,
                               LoadReport, add_checkpoint_check,
                               check_checkpoint_file, compare_state_dict,
                               describe_checkpoint_file)
from .config_check import (ConfigKeyError, ConfigSyntaxError, check_cfg_keys,
                           load_config)
from .quiet_init import init_weights_quietly
from .safe_io import (OutputOverInputError, atomic_write,
                      check_output_not_input, check_writable, load_json_file,
                      same_path)
from .size_check import (FrameSizeError, check_frame_sizes,
                         check_inference_frames, read_image_size)

#: errors that mean "bad input": the tools print them without a traceback
USER_INPUT_ERRORS = (OutputOverInputError, CheckpointLoadError, ConfigKeyError,
                     ConfigSyntaxError, FrameSizeError)

__all__ = [
    'CheckpointLoadCheckHook', 'CheckpointLoadError', 'LoadReport',
    'add_checkpoint_check', 'check_checkpoint_file', 'compare_state_dict',
    'describe_checkpoint_file', 'ConfigKeyError', 'ConfigSyntaxError',
    'check_cfg_keys', 'load_config', 'OutputOverInputError', 'atomic_write',
    'check_output_not_input', 'check_writable', 'load_json_file', 'same_path',
    'FrameSizeError', 'check_frame_sizes', 'check_inference_frames',
    'read_image_size', 'USER_INPUT_ERRORS', 'init_weights_quietly'
]
