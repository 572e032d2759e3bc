from services.common.serve import serve
from services.shifts.app import create_app
from services.shifts.settings import ShiftsSettings

if __name__ == "__main__":
    serve("shifts", ShiftsSettings(), create_app)
