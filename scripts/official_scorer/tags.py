# Only PHITag.tag_types is referenced (by the i2b2 reader); the BRAT path does not use it.
class PHITag(object):
    tag_types = {}
