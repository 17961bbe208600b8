"""Trainers: the common loop (:mod:`.loop`) and the tasks that plug into it (:mod:`.dcl`, :mod:`.enhancer`)."""
