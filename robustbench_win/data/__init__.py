"""Data sets: the embedded MNIST digits, torchvision's, image folders; held as uint8 tensors."""
