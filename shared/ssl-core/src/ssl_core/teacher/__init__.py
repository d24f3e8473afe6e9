"""Teacher networks and their state: EMA teacher, DINO centre, memory-bank queue, teacher schedules."""

from ssl_core.teacher.centering import Center
from ssl_core.teacher.ema import EMATeacher
from ssl_core.teacher.queue import FeatureQueue
from ssl_core.teacher.schedules import teacher_temperature_schedule

__all__ = ["Center", "EMATeacher", "FeatureQueue", "teacher_temperature_schedule"]
