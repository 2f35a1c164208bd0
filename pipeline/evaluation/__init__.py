"""Quality metrics of dubs: FID features, CSIM, LSE-D/C, per job on Ray Data."""
