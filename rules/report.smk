# Rules for the report stages (see README.md).
