# Rules for the upload stages (see README.md).
