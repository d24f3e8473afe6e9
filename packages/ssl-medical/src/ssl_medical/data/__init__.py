"""Medical data: the MRI atlas, the head CT, DICOM, UCR signals, pathology tiles and user folders, loaded into
:class:`ssl_core.data.DataBundle` by :func:`load_data`."""
