"""What more than one probe family uses: the storage interface (storage.py), the failed-write
cleanup rule (cleanup.py), sweeping leftovers (sweep.py). Above the clients, below the
families."""
