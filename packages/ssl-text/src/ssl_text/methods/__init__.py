"""Text methods, one file each: the paper's objective in code. What several of them share lives in
:mod:`ssl_text.methods.common` (the method bases), :mod:`ssl_text.pretext` and :mod:`ssl_text.models`;
:mod:`ssl_text.modality` registers them."""
