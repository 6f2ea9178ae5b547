"""lakeprobe.cli"""
