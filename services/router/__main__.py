from services.common.serve import serve
from services.router.app import create_app
from services.router.settings import RouterSettings

if __name__ == "__main__":
    serve("router", RouterSettings(), create_app)
