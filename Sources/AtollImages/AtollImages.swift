// AtollImages
