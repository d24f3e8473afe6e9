"""Medical probes beyond kNN and linear: few-shot segmentation Dice on the atlas."""
