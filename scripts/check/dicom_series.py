#!/usr/bin/env python3
"""Reads a folder of DICOM files with pydicom (an independent reader) and prints, as JSON, per
file in name order: the patient, study and series attributes, the geometry and the pixel values
in HU (stored * RescaleSlope + RescaleIntercept), so scoreinv's DICOM output can be checked.

Usage: scripts/check/dicom_series.py FOLDER   (with the .venv Python)
"""
import json
import os
import sys

import numpy as np
import pydicom


def main(folder):
    rows = []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if not name.endswith(".dcm"):
            continue
        d = pydicom.dcmread(path)
        hu = d.pixel_array.astype(np.float64) * float(d.RescaleSlope) + float(d.RescaleIntercept)
        rows.append({
            "file": name,
            "transfer_syntax": str(d.file_meta.TransferSyntaxUID),
            "media_sop_instance_uid": str(d.file_meta.MediaStorageSOPInstanceUID),
            "sop_class_uid": str(d.SOPClassUID),
            "sop_instance_uid": str(d.SOPInstanceUID),
            "series_instance_uid": str(d.SeriesInstanceUID),
            "study_instance_uid": str(d.StudyInstanceUID),
            "frame_of_reference_uid": str(d.get("FrameOfReferenceUID", "")),
            "patient_name": str(d.PatientName),
            "patient_id": str(d.PatientID),
            "study_date": str(d.get("StudyDate", "")),
            "series_description": str(d.SeriesDescription),
            "modality": str(d.Modality),
            "instance_number": int(d.InstanceNumber),
            "ipp": [float(v) for v in d.ImagePositionPatient],
            "iop": [float(v) for v in d.ImageOrientationPatient],
            "pixel_spacing": [float(v) for v in d.PixelSpacing],
            "slice_thickness": float(d.SliceThickness),
            "slice_location": float(d.SliceLocation),
            "rescale_slope": float(d.RescaleSlope),
            "rescale_intercept": float(d.RescaleIntercept),
            "pixel_representation": int(d.PixelRepresentation),
            "shape": list(hu.shape),
            "hu": hu.ravel().tolist(),
        })
    json.dump(rows, sys.stdout)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: dicom_series.py FOLDER")
    main(sys.argv[1])
