"""The data layer: the Frame record, rosbag2 bags, and the datasets read from them (bag index, folder layout, NYUv2,
real SR300 and Middlebury data). Only ``torch_datasets`` imports torch."""
